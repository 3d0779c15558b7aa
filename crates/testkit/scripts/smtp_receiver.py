"""The SMTP receiver behind vertice-testkit's `SmtpReceiver` (crates/testkit/src/services/smtp.rs).

A real SMTP server (aiosmtpd, Debian's python3-aiosmtpd, run by /usr/bin/python3) that spools
every accepted message as one JSON file in a Maildir-like directory:
`<spool>/tmp/<n>.json` while it is written, then renamed into `<spool>/new/<n>.json`, so a
reader never sees half a message. Each file holds the envelope (`mail_from`, `rcpt_tos`), the
login that authenticated (`login`, never the password), whether the session was under TLS
(`tls`) and the message exactly as received (`data`, base64).

With `--user`, AUTH PLAIN and LOGIN are offered and required before MAIL; the password comes
from the environment variable VERTICE_SMTP_PASSWORD, so it is not in the process list. AUTH
works without TLS (`auth_require_tls=False`): the tests' clients log in over plain TCP too.
With `--tls-cert`/`--tls-key`, STARTTLS is offered (and required with `--require-starttls`).
"""

import argparse
import base64
import hmac
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

PASSWORD_ENV = "VERTICE_SMTP_PASSWORD"


class Spool:
    """The aiosmtpd handler: writes each message to the spool directory."""

    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        # Handlers run on the controller's one event loop thread: the counter needs no lock.
        self.count += 1
        auth = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "login": auth.login.decode("utf-8", "replace")
            if isinstance(auth, LoginPassword)
            else None,
            "tls": session.ssl is not None,
            "data": base64.b64encode(envelope.original_content).decode("ascii"),
        }
        name = f"{self.count:06}.json"
        staging = os.path.join(self.directory, "tmp", name)
        with open(staging, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.rename(staging, os.path.join(self.directory, "new", name))
        print(f"accepted message {name} from {envelope.mail_from}", flush=True)
        return f"250 2.0.0 OK queued as {name}"


def authenticator(user, password):
    """An aiosmtpd authenticator accepting exactly `user` and `password` (bytes)."""

    def check(server, session, envelope, mechanism, auth_data):
        accepted = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, user)
            and hmac.compare_digest(auth_data.password, password)
        )
        if not accepted:
            login = getattr(auth_data, "login", b"?").decode("utf-8", "replace")
            print(f"refused AUTH {mechanism} for login {login!r}", flush=True)
        # handled=False: aiosmtpd answers 535 itself on a refusal.
        return AuthResult(success=accepted, handled=False, auth_data=auth_data)

    return check


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--user")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--require-starttls", action="store_true")
    args = parser.parse_args()

    for sub in ("tmp", "new"):
        os.makedirs(os.path.join(args.spool, sub), exist_ok=True)

    options = {"auth_require_tls": False}
    if args.user:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            parser.error(f"--user needs the password in {PASSWORD_ENV}")
        options["authenticator"] = authenticator(
            args.user.encode("utf-8"), password.encode("utf-8")
        )
        options["auth_required"] = True
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        options["tls_context"] = context
        options["require_starttls"] = args.require_starttls

    controller = Controller(
        Spool(args.spool),
        hostname=args.host,
        port=args.port,
        server_hostname="localhost",
        **options,
    )
    controller.start()
    print(f"listening on {args.host}:{args.port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
