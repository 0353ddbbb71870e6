"""test_security_config: failing closed, and key files. Without a security
section a non-loopback tcp endpoint is a configuration error (exit 78)
naming the endpoint, for the broker and check-config; plaintext: true is
the way out and is warned about at start. Every process refuses a secret
key that group or others may read (exit 78, naming the file and its mode);
herald up refuses to start without a worker key; the broker refuses CURVE
on a libzmq without it; herald keygen writes a 0600 secret and never
overwrites."""

import os
import stat
import subprocess

import harness
import securitylib as sec


def run(h, argv, env=None, timeout=20):
    full_env = dict(os.environ, **env) if env else None
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=h.tmp, env=full_env)


def body(t):
    # ---- no security section: loopback and ipc only
    h = harness.Herald("security-config")
    t.deployments.append(h)
    with open(h.config) as f:
        text = f.read()
    port = sec.free_ports(1)[0]
    open_config = os.path.join(h.tmp, "open.yaml")
    with open(open_config, "w") as f:
        f.write(text.replace(harness._yaml_str(h.endpoint("producers")),
                             harness._yaml_str("tcp://0.0.0.0:%d" % port)))
    r = run(h, [harness.binary("herald-broker"), "-c", open_config])
    t.check(r.returncode == harness.EX_CONFIG
            and "broker.listen.producers: tcp://0.0.0.0:%d is reachable from the network" % port in r.stderr
            and "open.yaml:" in r.stderr,
            "no security section: the broker refuses tcp://0.0.0.0 (exit 78, file, line and endpoint)",
            "exit %d: %s" % (r.returncode, r.stderr.strip()))
    r = h.herald("check-config", "-c", open_config, config=False)
    t.check(r.returncode == harness.EX_CONFIG and "is reachable from the network" in r.stderr,
            "check-config says the same", "exit %d: %s" % (r.returncode, r.stderr.strip()))
    for endpoint in ("tcp://*:%d" % port, "tcp://eth0:%d" % port, "tcp://10.1.2.3:%d" % port):
        with open(open_config, "w") as f:
            f.write(text.replace(harness._yaml_str(h.endpoint("workers")), harness._yaml_str(endpoint)))
        r = h.herald("check-config", "-c", open_config, config=False)
        t.check(r.returncode == harness.EX_CONFIG and endpoint in r.stderr,
                "... and %s" % endpoint, "exit %d: %s" % (r.returncode, r.stderr.strip()))
    # from the source tree, where the sample's relative template paths resolve
    r = subprocess.run([harness.binary("herald"), "check-config", "-c", "etc/herald.yaml"],
                       capture_output=True, text=True, timeout=30, cwd=harness.SOURCE_DIR)
    t.check(r.returncode == 0, "the sample etc/herald.yaml (loopback) still loads", r.stderr)

    # ---- plaintext: true is the explicit way out, warned about at every start
    plain_ports = sec.free_ports(3)
    plain_text = text
    for name, p in zip(("producers", "workers", "admin"), plain_ports):
        plain_text = plain_text.replace(harness._yaml_str(h.endpoint(name)),
                                        harness._yaml_str("tcp://127.0.0.1:%d" % p))
    with open(h.config, "w") as f:
        f.write(plain_text + "security: { plaintext: true }\n")
    broker = h.spawn("broker-plaintext", [harness.binary("herald-broker"), "-c", h.config])
    harness.wait_until(lambda: sec.log_lines(broker, "broker ready") or not broker.alive(), 15,
                       "the plaintext broker to start")
    t.check(broker.alive() and sec.log_lines(broker, "plaintext: true"),
            "plaintext: true starts, with a warning in the log", "".join(sec.log_lines(broker, "plaintext")))
    h.kill(broker, timeout=15)

    # ---- key files
    s = sec.SecureHerald("security-config-keys", tcp=False)
    t.deployments.append(s)
    broker_secret = s.key("broker", "secret")
    os.chmod(broker_secret, 0o644)
    r = run(s, [harness.binary("herald-broker"), "-c", s.config])
    t.check(r.returncode == harness.EX_CONFIG
            and "%s: mode 0644 is readable by group and others; chmod 600 it" % broker_secret in r.stderr,
            "the broker refuses its secret key readable by others (exit 78, file and mode)",
            "exit %d: %s" % (r.returncode, r.stderr.strip()))
    os.chmod(broker_secret, 0o600)

    mailer = s.key(sec.WORKER_KEYS["email"], "secret")
    os.chmod(mailer, 0o640)
    r = run(s, [harness.binary("herald-worker"), "-c", s.config, "--channel", "email"])
    t.check(r.returncode == harness.EX_CONFIG and "%s: mode 0640 is readable by group" % mailer in r.stderr,
            "a worker refuses its key readable by group (exit 78)", "exit %d: %s" % (r.returncode, r.stderr.strip()))
    r = s.herald("up")
    t.check(r.returncode == harness.EX_CONFIG and "mode 0640" in r.stderr,
            "herald up refuses it before starting anything", "exit %d: %s" % (r.returncode, r.stderr.strip()))
    os.chmod(mailer, 0o600)

    shop = s.key(sec.PRODUCER, "secret")
    os.chmod(shop, 0o604)
    r = s.publish(harness.order(1), extra=["--key", shop])
    t.check(r.returncode == harness.EX_CONFIG and "mode 0604 is readable by others" in r.stderr,
            "herald publish refuses a key readable by others (exit 78)",
            "exit %d: %s" % (r.returncode, r.stderr.strip()))
    os.chmod(shop, 0o600)

    os.rename(mailer, mailer + ".away")
    r = s.herald("up")
    t.check(r.returncode == harness.EX_CONFIG and "email workers' key" in r.stderr and "mailer.secret" in r.stderr,
            "herald up without the email workers' key: exit 78, naming the file",
            "exit %d: %s" % (r.returncode, r.stderr.strip()))
    os.rename(mailer + ".away", mailer)
    r = s.herald("status", "--timeout", "500", "--key", s.key("nobody", "secret"))
    t.check(r.returncode == harness.EX_CONFIG and "nobody.secret: cannot open" in r.stderr,
            "a missing --key is a configuration error naming it", "exit %d: %s" % (r.returncode, r.stderr.strip()))

    # ---- a libzmq without CURVE (zmq_has answers no, through the fault library)
    preload = os.path.join(harness.BIN_DIR, "libherald_faultinject.so")
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": preload, "HERALD_FAULT_NO_CURVE": "1",
           "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
    r = run(s, [harness.binary("herald-broker"), "-c", s.config], env=env)
    t.check(r.returncode == harness.EX_CONFIG and "no CURVE support" in r.stderr,
            "on a libzmq without CURVE the broker refuses to start (exit 78)",
            "exit %d: %s" % (r.returncode, r.stderr.strip()))

    # ---- the broker's public key must match its secret key
    s.make_keys("other")
    os.rename(s.key("broker"), s.key("broker") + ".orig")
    os.link(s.key("other"), s.key("broker"))
    r = run(s, [harness.binary("herald-broker"), "-c", s.config])
    t.check(r.returncode == harness.EX_CONFIG and "does not belong to" in r.stderr,
            "a broker.public that is not the broker's key is refused", "exit %d: %s" % (r.returncode, r.stderr.strip()))
    os.unlink(s.key("broker"))
    os.rename(s.key("broker") + ".orig", s.key("broker"))

    # ---- herald keygen
    name = os.path.join(s.tmp, "keys", "fresh")
    r = s.herald("keygen", name, config=False)
    mode = stat.S_IMODE(os.stat(name + ".secret").st_mode) if os.path.exists(name + ".secret") else None
    t.check(r.returncode == 0 and mode == 0o600 and os.path.exists(name + ".public"),
            "herald keygen writes NAME.public and NAME.secret (mode 0600)", "exit %d mode %r %s"
            % (r.returncode, mode, r.stderr))
    with open(name + ".secret") as f:
        before = f.read()
    r = s.herald("keygen", name, config=False)
    with open(name + ".secret") as f:
        after = f.read()
    t.check(r.returncode == 73 and "exists" in r.stderr and before == after,
            "a second keygen never overwrites (exit 73)", "exit %d %s" % (r.returncode, r.stderr))
    r = s.herald("keygen", config=False)
    t.check(r.returncode == harness.EX_USAGE, "keygen without NAME: usage error (64)", r.stderr)
    r = s.herald("keygen", "--help", config=False)
    t.check(r.returncode == 0 and "NAME.secret" in r.stdout, "keygen --help", r.stdout)
    for cmd in (["publish"], ["status"], ["dead"]):
        r = s.herald(*cmd, "--help", config=False)
        t.check(r.returncode == 0 and "--key FILE" in r.stdout, "herald %s --help documents --key" % cmd[0])
    r = run(s, [harness.binary("herald-worker"), "--help"])
    t.check(r.returncode == 0 and "--key FILE" in r.stdout, "herald-worker --help documents --key")


if __name__ == "__main__":
    harness.Test("security_config", budget=120).run(body)
