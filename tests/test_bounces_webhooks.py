"""Provider webhooks with the providers' documented payload shapes, signed
here with local keys: SES over SNS (RSA certificate served over real HTTPS
from 127.0.0.1, allow-listed for the test; SubscriptionConfirmation
confirmed), Postmark (basic auth), Mailgun (HMAC) and SendGrid (ECDSA).
Each maps bounce, complaint and unsubscribe to the mailbox's decisions and
rejects a bad signature and a replay, changing nothing."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import hmac
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient
from tests.bounce_kit import SentSite, sent_site
from tests.dovecot_kit import self_signed
from tests.web_kit import NOW, PEOPLE, SECRET

from dispatch.bounces.sns import host_allowed, string_to_sign
from dispatch.config import load_settings
from dispatch.store.schema import bounce_events
from dispatch.web import webhooks

ALICE, BOB, CAROL = (email for email, _ in PEOPLE)
POSTMARK_PASSWORD = "postmark-hook-password"
MAILGUN_KEY = "key-mailgun-signing-test"
CLOCK = NOW + dt.timedelta(minutes=1)


# --- a local HTTPS server for the SNS signing certificate ----------------------

class _Handler(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = self.files.get(self.path.split("?")[0], b"confirmed")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class SnsSigner:
    """Plays SNS: an RSA signing certificate served over HTTPS, and signing."""

    def __init__(self, root: Path) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = NOW  # valid around the test's clock, as SNS's certificate is around ours
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(1)
                     .not_valid_before(now - dt.timedelta(days=1))
                     .not_valid_after(now + dt.timedelta(days=30))
                     .sign(self.key, hashes.SHA256()))
        tls_cert, tls_key = self_signed(root)
        self.tls_cert = tls_cert
        handler = type("H", (_Handler,), {"files": {
            "/SimpleNotificationService-test.pem": self.cert.public_bytes(
                serialization.Encoding.PEM)}, "hits": []})
        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_cert, tls_key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def sign(self, message: dict[str, Any], version: str = "1") -> dict[str, Any]:
        signed = dict(message, SignatureVersion=version,
                      SigningCertURL=f"{self.base}/SimpleNotificationService-test.pem")
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(string_to_sign(signed), padding.PKCS1v15(), algorithm)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SnsSigner]:
    signer = SnsSigner(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(signer.tls_cert))  # trust the local HTTPS server
    yield signer
    signer.stop()


@pytest.fixture
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def site(example_site: Path, monkeypatch: pytest.MonkeyPatch,
         sendgrid_key: ec.EllipticCurvePrivateKey) -> SentSite:
    monkeypatch.setenv("DISPATCH_SECRET_KEY", SECRET)
    monkeypatch.setenv("DISPATCH_POSTMARK_WEBHOOK_PASSWORD", POSTMARK_PASSWORD)
    monkeypatch.setenv("DISPATCH_MAILGUN_SIGNING_KEY", MAILGUN_KEY)
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    monkeypatch.setenv("DISPATCH_SENDGRID_PUBLIC_KEY", base64.b64encode(public).decode())
    sent = sent_site(example_site)
    toml = example_site / "dispatch.toml"
    toml.write_text(toml.read_text() + 'ses_cert_hosts = ["127.0.0.1"]\n'
                    'ses_topics = ["arn:aws:sns:us-west-2:123456789012:ses-bounces"]\n')
    sent.site.settings = load_settings(example_site)
    return sent


@pytest.fixture
def client(site: SentSite) -> Iterator[TestClient]:
    app = Starlette(routes=webhooks.routes(site.site.settings, site.site.store,
                                           clock=lambda: CLOCK))
    with TestClient(app) as test_client:
        yield test_client


def events(site: SentSite) -> list[Any]:
    with site.site.store.read() as conn:
        return list(conn.execute(select(bounce_events).order_by(bounce_events.c.id)))


# --- Amazon SES ------------------------------------------------------------------

def ses_notification(kind: str, email: str, source: str, n: int) -> dict[str, Any]:
    mail = {"timestamp": "2026-12-01T12:00:00.000Z", "source": source,
            "sourceArn": "arn:aws:ses:us-west-2:123456789012:identity/journal.test",
            "messageId": f"0000013811122{n}aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            "destination": [email], "headersTruncated": False}
    if kind == "Bounce":
        return {"notificationType": "Bounce", "mail": mail, "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": email, "action": "failed",
                                   "status": "5.1.1",
                                   "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
            "timestamp": "2026-12-01T12:00:01.000Z",
            "feedbackId": f"00000138111222aa-{n}-000000",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"}}
    return {"notificationType": "Complaint", "mail": mail, "complaint": {
        "userAgent": "AnyCompany Feedback Loop (V0.01)",
        "complainedRecipients": [{"emailAddress": email}],
        "complaintFeedbackType": "abuse", "timestamp": "2026-12-01T12:00:02.000Z",
        "feedbackId": f"000001378603177f-{n}-000000"}}


def sns_envelope(message: dict[str, Any], n: int, timestamp: dt.datetime = NOW
                 ) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": f"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf3{n:02d}",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:ses-bounces",
            "Message": json.dumps(message),
            "Timestamp": timestamp.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe"}


def test_ses_bounce_and_complaint_over_signed_sns(site: SentSite, client: TestClient,
                                                  sns: SnsSigner) -> None:
    bounce = sns.sign(sns_envelope(ses_notification(
        "Bounce", ALICE, site.sent[ALICE].return_path, 1), 1))
    answer = client.post("/webhooks/ses", content=json.dumps(bounce))
    assert answer.status_code == 200, answer.text
    assert site.site.status(ALICE) == "bounced"
    row = events(site)[-1]
    # The VERP return path in mail.source named the very message.
    assert row.outbox_id is not None and row.edition_id == site.site.edition_id
    assert row.status_code == "5.1.1" and row.report_id.startswith("ses:")

    complaint = sns.sign(sns_envelope(ses_notification(
        "Complaint", BOB, "journal@journal.test", 2), 2), version="2")
    assert client.post("/webhooks/ses", content=json.dumps(complaint)).status_code == 200
    assert site.site.status(BOB) == "complained"

    # Replay: the same signed message again.
    replay = client.post("/webhooks/ses", content=json.dumps(complaint))
    assert replay.status_code == 409
    # A bad signature: the message altered after signing (Carol put in).
    forged = copy.deepcopy(complaint)
    forged["Message"] = forged["Message"].replace(BOB, CAROL)
    forged["MessageId"] = "another-id"
    assert client.post("/webhooks/ses", content=json.dumps(forged)).status_code == 401
    # Stale: correctly signed, but older than the replay window.
    stale = sns.sign(sns_envelope(ses_notification("Complaint", CAROL, "x@journal.test", 3), 3,
                                  NOW - dt.timedelta(hours=2)))
    assert client.post("/webhooks/ses", content=json.dumps(stale)).status_code == 400
    # A certificate URL on a host not allowed, even with a valid signature.
    elsewhere = dict(sns.sign(sns_envelope(
        ses_notification("Complaint", CAROL, "x@journal.test", 4), 4)),
        SigningCertURL="https://sns.evil.example/SimpleNotificationService-test.pem")
    assert client.post("/webhooks/ses", content=json.dumps(elsewhere)).status_code == 401
    assert site.site.status(CAROL) == "active"
    assert len(events(site)) == 2


def test_ses_subscription_confirmation_is_fetched_once_verified(
        site: SentSite, client: TestClient, sns: SnsSigner) -> None:
    confirm_url = f"{sns.base}/?Action=ConfirmSubscription&Token=2336412f37fb687f5d51e6e2"
    message = sns.sign({
        "Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e2",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:ses-bounces",
        "Message": "You have chosen to subscribe to the topic. To confirm, visit SubscribeURL.",
        "SubscribeURL": confirm_url, "Timestamp": NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
    unsigned = dict(message, Signature=base64.b64encode(b"x" * 256).decode())
    assert client.post("/webhooks/ses", content=json.dumps(unsigned)).status_code == 401
    assert not [h for h in sns.handler.hits if "ConfirmSubscription" in h]
    answer = client.post("/webhooks/ses", content=json.dumps(message))
    assert answer.status_code == 200 and answer.json()["confirmed"] is True
    assert [h for h in sns.handler.hits if "ConfirmSubscription" in h] == [
        confirm_url.removeprefix(sns.base)]
    other_topic = sns.sign(dict(message, TopicArn="arn:aws:sns:us-west-2:1:other",
                                MessageId="x"))
    assert client.post("/webhooks/ses", content=json.dumps(other_topic)).status_code == 403


def test_sns_certificate_host_allow_list_matches_whole_labels() -> None:
    hosts = ("sns.*.amazonaws.com",)
    assert host_allowed("https://sns.eu-west-1.amazonaws.com/x.pem", hosts)
    for bad in ("http://sns.eu-west-1.amazonaws.com/x.pem",
                "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem",
                "https://sns.a.b.amazonaws.com/x.pem", "https://evilsns.x.amazonaws.com/x.pem",
                "https://sns.eu-west-1.amazonaws.com@evil.example/x.pem"):
        assert not host_allowed(bad, hosts), bad


# --- Postmark --------------------------------------------------------------------

def postmark_bounce(email: str, record: str = "Bounce", kind: str = "HardBounce",
                    n: int = 4323372036854775807) -> dict[str, Any]:
    return {"RecordType": record, "MessageStream": "broadcast", "ID": n, "Type": kind,
            "TypeCode": 1 if kind == "HardBounce" else 512, "Name": "Hard bounce",
            "Tag": "weekly", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Metadata": {}, "ServerID": 23,
            "Description": "The server was unable to deliver your message (ex: unknown user, "
                           "mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Email": email, "From": "journal@journal.test",
            "BouncedAt": "2026-12-01T12:00:54.9070259Z", "DumpAvailable": True,
            "Inactive": True, "CanActivate": True, "Subject": "Sleep and blood pressure"}


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_postmark_basic_auth_bounce_complaint_unsubscribe(site: SentSite,
                                                          client: TestClient) -> None:
    good = _basic("postmark", POSTMARK_PASSWORD)
    body = postmark_bounce(ALICE)
    wrong = client.post("/webhooks/postmark", json=body, headers=_basic("postmark", "nope"))
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert client.post("/webhooks/postmark", json=body).status_code == 401
    assert site.site.status(ALICE) == "active"
    assert client.post("/webhooks/postmark", json=body, headers=good).status_code == 200
    assert site.site.status(ALICE) == "bounced"
    assert events(site)[-1].status_code == "5.1.1"
    assert client.post("/webhooks/postmark", json=body, headers=good).status_code == 409

    spam = postmark_bounce(BOB, "SpamComplaint", "SpamComplaint", 42)
    assert client.post("/webhooks/postmark", json=spam, headers=good).status_code == 200
    assert site.site.status(BOB) == "complained"
    change = {"RecordType": "SubscriptionChange", "MessageID": "a4909a96-73e6-4c4c-a2da",
              "ServerID": 23, "MessageStream": "broadcast",
              "ChangedAt": "2026-12-01T12:05:00Z", "Recipient": CAROL, "Origin": "Recipient",
              "SuppressSending": True, "SuppressionReason": "ManualSuppression",
              "Tag": "weekly", "Metadata": {}}
    assert client.post("/webhooks/postmark", json=change, headers=good).status_code == 200
    assert site.site.status(CAROL) == "unsubscribed"


# --- Mailgun ---------------------------------------------------------------------

def mailgun_event(email: str, event: str, token: str, when: dt.datetime = CLOCK,
                  key: str = MAILGUN_KEY) -> dict[str, Any]:
    timestamp = str(int(when.timestamp()))
    data: dict[str, Any] = {
        "event": event, "id": f"G9Bn5sl1TC6nu79C8C0bwg-{token[:6]}",
        "timestamp": when.timestamp(), "log-level": "error", "recipient": email,
        "recipient-domain": email.split("@")[1],
        "envelope": {"sender": "journal@mg.journal.test", "transport": "smtp",
                     "targets": email},
        "message": {"headers": {"to": email, "message-id": "20261201.1@mg.journal.test",
                                "from": "journal@journal.test", "subject": "Sleep"}}}
    if event == "failed":
        data |= {"severity": "permanent", "reason": "bounce", "delivery-status": {
            "attempt-no": 1, "code": 550, "session-seconds": 0.4,
            "message": "5.1.1 The email account that you tried to reach does not exist.",
            "description": ""}}
    signature = hmac.new(key.encode(), (timestamp + token).encode(),
                         hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": data}


def test_mailgun_hmac_bounce_complaint_unsubscribe(site: SentSite, client: TestClient) -> None:
    token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    bad = mailgun_event(ALICE, "failed", token, key="another key")
    assert client.post("/webhooks/mailgun", json=bad).status_code == 401
    stale = mailgun_event(ALICE, "failed", token + "1", when=CLOCK - dt.timedelta(hours=1))
    assert client.post("/webhooks/mailgun", json=stale).status_code == 400
    assert site.site.status(ALICE) == "active"
    good = mailgun_event(ALICE, "failed", token)
    assert client.post("/webhooks/mailgun", json=good).status_code == 200
    assert site.site.status(ALICE) == "bounced"
    assert events(site)[-1].status_code == "5.1.1"
    assert client.post("/webhooks/mailgun", json=good).status_code == 409
    for who, event, expected in ((BOB, "complained", "complained"),
                                 (CAROL, "unsubscribed", "unsubscribed")):
        answer = client.post("/webhooks/mailgun", json=mailgun_event(who, event, event * 4))
        assert answer.status_code == 200
        assert site.site.status(who) == expected


# --- SendGrid --------------------------------------------------------------------

def sendgrid_request(key: ec.EllipticCurvePrivateKey, batch: list[dict[str, Any]],
                     when: dt.datetime = CLOCK) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(batch).encode()
    timestamp = str(int(when.timestamp()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                  "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
                  "Content-Type": "application/json"}


def sendgrid_batch() -> list[dict[str, Any]]:
    common = {"timestamp": 1764590400, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
              "category": "weekly", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001"}
    return [
        common | {"email": ALICE, "event": "bounce", "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
                  "reason": "550 5.1.1 The email account does not exist", "status": "5.1.1",
                  "type": "bounce"},
        common | {"email": BOB, "event": "spamreport",
                  "sg_event_id": "37nvH5QBz858KGVYCM4uOA=="},
        common | {"email": CAROL, "event": "unsubscribe",
                  "sg_event_id": "zmzJhfJgAfUSOW80yEbPyw=="},
        common | {"email": CAROL, "event": "open", "sg_event_id": "FOTFFO0ecsBE-zxFXfs6WA=="},
    ]


def test_sendgrid_ecdsa_batch(site: SentSite, client: TestClient,
                              sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    body, headers = sendgrid_request(sendgrid_key, sendgrid_batch())
    other = ec.generate_private_key(ec.SECP256R1())
    _, forged_headers = sendgrid_request(other, sendgrid_batch())
    assert client.post("/webhooks/sendgrid", content=body,
                       headers=forged_headers).status_code == 401
    tampered = body.replace(b"spamreport", b"delivered_")
    assert client.post("/webhooks/sendgrid", content=tampered, headers=headers).status_code == 401
    old_body, old_headers = sendgrid_request(sendgrid_key, sendgrid_batch(),
                                             CLOCK - dt.timedelta(hours=3))
    assert client.post("/webhooks/sendgrid", content=old_body,
                       headers=old_headers).status_code == 400
    assert {site.site.status(e) for e in (ALICE, BOB, CAROL)} == {"active"}

    answer = client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 3  # the open event is not ours to act on
    assert [site.site.status(e) for e in (ALICE, BOB, CAROL)] == [
        "bounced", "complained", "unsubscribed"]
    assert client.post("/webhooks/sendgrid", content=body, headers=headers).status_code == 409


def test_unconfigured_webhooks_answer_404(site: SentSite, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    env = {"DISPATCH_SECRET_KEY": SECRET}
    app = Starlette(routes=webhooks.routes(site.site.settings, site.site.store,
                                           clock=lambda: CLOCK, environ=env))
    with TestClient(app) as bare:
        assert bare.post("/webhooks/postmark", json={}).status_code == 404
        assert bare.post("/webhooks/mailgun", json=mailgun_event(ALICE, "failed", "t")
                         ).status_code == 404
        assert bare.post("/webhooks/sendgrid", content=b"[]").status_code == 404
        assert bare.post("/webhooks/mailgun", content=b"not json").status_code == 400


def test_old_nonces_are_pruned_once_their_requests_would_be_stale(site: SentSite) -> None:
    from dispatch.store.schema import webhook_receipts

    later = CLOCK + dt.timedelta(hours=1)
    clock = [CLOCK]
    app = Starlette(routes=webhooks.routes(site.site.settings, site.site.store,
                                           clock=lambda: clock[0]))
    with TestClient(app) as hooks:
        first = mailgun_event(BOB, "complained", "first-token-0001")
        assert hooks.post("/webhooks/mailgun", json=first).status_code == 200
        clock[0] = later
        second = mailgun_event(CAROL, "unsubscribed", "second-token-002", when=later)
        assert hooks.post("/webhooks/mailgun", json=second).status_code == 200
        # The first is now refused as stale, though its nonce is gone.
        assert hooks.post("/webhooks/mailgun", json=first).status_code == 400
    with site.site.store.read() as conn:
        nonces = list(conn.execute(select(webhook_receipts.c.nonce)).scalars())
    assert nonces == ["mailgun:second-token-002"]


def test_dispatch_serve_mounts_the_webhooks(site: SentSite) -> None:
    """The real `dispatch serve` (uvicorn) answers on /webhooks/*."""
    from tests.web_kit import client as http_client
    from tests.web_kit import dispatch_serve

    env = {"DISPATCH_SECRET_KEY": SECRET,
           "DISPATCH_POSTMARK_WEBHOOK_PASSWORD": POSTMARK_PASSWORD}
    body = postmark_bounce(CAROL, n=77)
    with dispatch_serve(site.site.root, env) as base, http_client(base) as web:
        assert web.post("/webhooks/postmark", json=body).status_code == 401
        answer = web.post("/webhooks/postmark", json=body,
                          headers=_basic("postmark", POSTMARK_PASSWORD))
        assert answer.status_code == 200, answer.text
        assert web.get("/webhooks/postmark").status_code == 405
    assert site.site.status(CAROL) == "bounced"
