import zmq, time
c=zmq.Context(); d=c.socket(zmq.DEALER); d.connect("tcp://127.0.0.1:47311")
def status():
    d.send_multipart([b"HERALD/1",b"STATUS",b"s"]); return d.recv_multipart()
print(status())
t=time.time(); N=20000
for i in range(N): d.send_multipart([b"HERALD/1",b"PUBLISH",str(i).encode(),b'{"x":%d}'%i+b"y"*500])
acks=0
while acks<N:
    m=d.recv_multipart(); assert m[1]==b"ACK", m; acks+=1
while True:
    s=status()[3].split()
    if all(int(x)>=N for x in s[1:]): break
    time.sleep(0.005)
print(s, N/(time.time()-t))
