"""A real SMTP server for Termin's e-mail tests, on aiosmtpd.

Usage: python receiver.py '{"out": FILE, "fail_first": N, "reject": [ADDRESS...], "delay": SECONDS}'

Listens on a free port of 127.0.0.1 and prints "listening PORT" once it does. Appends one
JSON line to FILE per SMTP transaction:
- {"kind": "deferred", ...}: one of the first `fail_first` DATA commands, answered 451;
- {"kind": "rejected", ...}: a RCPT TO of an address in `reject`, answered 550;
- {"kind": "accepted", ...}: a message, parsed with Python's email package: envelope,
  headers, the plain and HTML bodies and the text/calendar attachment (raw, CRLF kept).
An accepted message is recorded first and answered after `delay` seconds (a slow server, so
that a test can kill the sender while a message is in flight).
"""

import asyncio
import email
import email.policy
import json
import sys

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, settings):
        self.out = settings["out"]
        self.fail_first = int(settings.get("fail_first", 0))
        self.reject = set(settings.get("reject", []))
        self.delay = float(settings.get("delay", 0))

    def record(self, entry):
        with open(self.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            self.record({"kind": "rejected", "to": address})
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        if self.fail_first > 0:
            self.fail_first -= 1
            self.record({"kind": "deferred", "to": envelope.rcpt_tos, "message_id": message["message-id"]})
            return "451 4.3.0 try again later"
        self.record(describe(envelope, message))
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 Message accepted"


def describe(envelope, message):
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    calendar = next((p for p in message.iter_attachments() if p.get_content_type() == "text/calendar"), None)
    return {
        "kind": "accepted",
        "mail_from": envelope.mail_from,
        "to": envelope.rcpt_tos,
        "message_id": message["message-id"],
        "from": str(message["from"]),
        "header_to": str(message["to"]),
        "subject": str(message["subject"]),
        "content_type": message.get_content_type(),
        "text": plain.get_content() if plain else None,
        "html": html.get_content() if html else None,
        "ics": calendar.get_payload(decode=True).decode("utf-8") if calendar else None,
        "ics_method": calendar.get_param("method") if calendar else None,
        "ics_filename": calendar.get_filename() if calendar else None,
    }


async def main():
    handler = Handler(json.loads(sys.argv[1]))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="receiver.test"), "127.0.0.1", 0)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
