#!/usr/bin/python3
"""smtp_server.py: a real SMTP server for Herald's tests (aiosmtpd).

Listens on 127.0.0.1, stores every accepted message in --out-dir as
NNNNNN.eml (the raw DATA, CRLF line ends, byte for byte) with a sidecar
NNNNNN.json: {"seq", "mail_from", "rcpt_tos", "tls", "auth_login", "peer"}.
The sidecar is written first and both files appear atomically (tmp + rename),
so a test that sees NNNNNN.eml can read both.

Recipients whose local part starts with "tempfail" get 451, "permfail" 550.
With --data-delay S the server waits S seconds after the message's final
dot before it stores the mail and answers (a slow relay: greylisting, content
scanning); a client that hangs up during the wait gets no mail stored.
Every DATA received is counted in --out-dir/data-count (one line per DATA,
written before the wait), so a test sees duplicates that were never stored.
The real port is written to --port-file (atomically) once listening.
Stops cleanly on SIGTERM or SIGINT. Run with Debian's /usr/bin/python3.
"""
import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Handler:
    def __init__(self, out_dir, data_delay=0.0):
        self.out_dir = out_dir
        self.data_delay = data_delay
        self.seq = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("tempfail"):
            return "451 4.3.0 temporary failure for <%s>" % address
        if local.startswith("permfail"):
            return "550 5.1.1 mailbox <%s> does not exist" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with open(os.path.join(self.out_dir, "data-count"), "a") as f:
            f.write("%s\n" % ",".join(envelope.rcpt_tos))
        if self.data_delay > 0:
            await asyncio.sleep(self.data_delay)
        self.seq += 1
        base = os.path.join(self.out_dir, "%06d" % self.seq)
        login = None
        if isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        side = {
            "seq": self.seq,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": session.ssl is not None
                   or server.transport.get_extra_info("ssl_object") is not None,
            "auth_login": login,
            "peer": list(session.peer) if session.peer else None,
        }
        write_atomic(base + ".json", json.dumps(side).encode() + b"\n")
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        write_atomic(base + ".eml", content)
        return "250 2.0.0 OK queued as %06d" % self.seq


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)   # aiosmtpd answers 535
    return authenticator


def main():
    ap = argparse.ArgumentParser(description="SMTP test server for Herald (stores mails as files).")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: chosen by the OS)")
    ap.add_argument("--port-file", required=True, help="file receiving the real port once listening")
    ap.add_argument("--out-dir", required=True, help="directory receiving NNNNNN.eml + NNNNNN.json")
    ap.add_argument("--tls-cert", help="PEM certificate: enables STARTTLS (required before MAIL)")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--implicit-tls", action="store_true",
                    help="with --tls-cert: TLS from the first byte (smtps) instead of STARTTLS")
    ap.add_argument("--auth", metavar="USER:PASS", help="require AUTH (PLAIN/LOGIN) with these credentials")
    ap.add_argument("--data-delay", type=float, default=0.0, metavar="SECONDS",
                    help="wait this long after the message's final dot before storing and answering")
    ap.add_argument("--quiet", action="store_true", help="no log lines on stderr")
    args = ap.parse_args()

    logging.basicConfig(level=logging.CRITICAL if args.quiet else logging.WARNING,
                        format="smtp_server: %(message)s")
    os.makedirs(args.out_dir, exist_ok=True)

    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    elif args.implicit_tls:
        ap.error("--implicit-tls needs --tls-cert and --tls-key")

    kwargs = {"hostname": "herald-test-smtp", "data_size_limit": 10 * 1024 * 1024}
    if ctx is not None and not args.implicit_tls:
        kwargs["tls_context"] = ctx
        kwargs["require_starttls"] = True
    if args.auth:
        user, _, password = args.auth.partition(":")
        kwargs["authenticator"] = make_authenticator(user, password)
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = ctx is not None

    if args.data_delay < 0:
        ap.error("--data-delay must be >= 0, got %s" % args.data_delay)
    handler = Handler(args.out_dir, args.data_delay)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if args.auth and ctx is None:
        import warnings
        warnings.simplefilter("ignore")
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, loop=loop, **kwargs), sock=sock,
        ssl=ctx if args.implicit_tls else None))

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    write_atomic(args.port_file, b"%d\n" % sock.getsockname()[1])
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
