"""What every reader-facing page shares: the layout and stylesheet, the CSRF
cookie and form tokens, the body size limit, and the requester's network.

Pages are plain server-rendered HTML with one small inline stylesheet that
uses the emails' colours (light and dark), readable from 375 px up; no page
needs JavaScript, and the Content-Security-Policy allows none.

CSRF: a form page sets a random ``dispatch_csrf`` cookie (HttpOnly,
SameSite=Lax) and puts a signed form token in the form that names the form,
the time it was shown and that cookie. A POST is accepted only with a token
for that form whose cookie matches the one the browser sent: another site
can neither read the token nor set the cookie. (The RFC 8058 one-click
unsubscribe POST is the exception: mail providers send it with no cookie
and no token, so it trusts its signed path alone.)
"""

from __future__ import annotations

import html
import json
import secrets
import time
from collections.abc import Mapping
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from dispatch.config import Settings
from dispatch.signup.limits import network_of
from dispatch.signup.tokens import form_token, read_form_token

MAX_BODY = 16 * 1024
"""A signup or preference form is a few hundred bytes; more is refused with 413."""
CSRF_COOKIE = "dispatch_csrf"
FORM_MAX_AGE = 2 * 3600
"""A form shown longer ago than this is shown again rather than accepted."""

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
}

# The emails' palette (inline.css / head.css): same brand blue, text and
# greys, and the same dark-mode colours.
STYLE = """
:root{color-scheme:light dark;--bg:#eef1f4;--card:#fff;--text:#1f2933;--muted:#52606d;
--brand:#0b5cad;--line:#cbd2d9;--on-brand:#fff;--error:#b42318;--note:#eaf3fc}
@media (prefers-color-scheme:dark){:root{--bg:#0f1216;--card:#1a1e23;--text:#e4e7eb;
--muted:#b4bcc6;--brand:#8fc3ff;--line:#3e4751;--on-brand:#0f1216;--error:#ffb4a8;
--note:#15273b}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);
font:16px/1.6 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
.wrap{max-width:40rem;margin:0 auto;padding:0 1rem}
header{background:var(--card);border-bottom:3px solid var(--brand)}
header .wrap{padding:1rem}
.masthead{color:var(--brand);font:bold 1.35rem/1.3 Georgia,'Times New Roman',serif;
text-decoration:none}
main{background:var(--card);margin:1.5rem auto;padding:1.25rem 1.5rem 1.75rem;
max-width:40rem;border-radius:6px}
h1{font:bold 1.75rem/1.25 Georgia,'Times New Roman',serif;margin:.25rem 0 1rem}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
a{color:var(--brand)}
p{margin:0 0 1rem}
label{display:block;font-weight:600;margin:1rem 0 .3rem}
.hint{color:var(--muted);font-size:.9rem;font-weight:normal}
input[type=email],input[type=text]{width:100%;padding:.6rem .7rem;font-size:1rem;
border:1px solid var(--muted);border-radius:4px;background:var(--card);color:var(--text)}
fieldset{border:1px solid var(--line);border-radius:4px;margin:1.25rem 0;padding:.5rem 1rem 1rem}
legend{font-weight:600;padding:0 .3rem}
.choice{display:flex;gap:.6rem;align-items:flex-start;margin:.6rem 0 0}
.choice input{width:1.25rem;height:1.25rem;margin:.2rem 0 0;flex:none}
.choice label{margin:0;font-weight:normal}
button{background:var(--brand);color:var(--on-brand);border:2px solid var(--brand);
border-radius:5px;padding:.65rem 1.3rem;font-size:1rem;font-weight:bold;cursor:pointer;
margin:.5rem .5rem 0 0}
button.secondary{background:transparent;color:var(--brand)}
.error{color:var(--error);font-weight:600}
.note{background:var(--note);border-left:4px solid var(--brand);padding:.6rem 1rem;margin:0 0 1rem}
.hp{position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden}
ol.editions{padding-left:1.25rem}ol.editions li{margin:.6rem 0}
.meta{color:var(--muted);font-size:.9rem}
footer{color:var(--muted);font-size:.9rem;padding-bottom:2rem}
footer a{color:var(--brand)}
"""


def layout(settings: Settings, title: str, body_html: str, *, status: int = 200,
           headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A whole page: header with the site's name, ``<main>`` and a footer."""
    site = html.escape(settings.site.title)
    document = (
        f'<!doctype html>\n<html lang="{html.escape(settings.site.language)}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width,'
        'initial-scale=1"><meta name="color-scheme" content="light dark">'
        f"<title>{html.escape(title)} · {site}</title><style>{STYLE}</style></head><body>"
        f'<header><div class="wrap"><a class="masthead" href="/">{site}</a></div></header>'
        f"<main><h1>{html.escape(title)}</h1>{body_html}</main>"
        '<footer class="wrap"><p><a href="/archive/">Past editions</a> · '
        f'<a href="/subscribe">Subscribe</a></p><p>{site}</p></footer></body></html>\n')
    return HTMLResponse(document, status_code=status, headers={**HEADERS, **(headers or {})})


def csrf_cookie(request: Request) -> tuple[str, bool]:
    """The browser's CSRF cookie, or a new one (then True: set it)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) == 32 and all(c in "0123456789abcdef" for c in value):
        return value, False
    return secrets.token_hex(16), True


def with_cookie(response: Response, request: Request, value: str, new: bool) -> Response:
    if new:
        response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="lax", path="/",
                            secure=request.url.scheme == "https")
    return response


def hidden_token(key: bytes, form: str, browser: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    token = form_token(key, form, issued, browser)
    return f'<input type="hidden" name="form_token" value="{html.escape(token)}">'


def form_age(key: bytes, request: Request, fields: Mapping[str, str], form: str,
             now: float) -> float | None:
    """Seconds since this browser was shown this form, or None if the POST
    does not carry a valid token for it (missing, forged, other browser)."""
    issued = read_form_token(key, fields.get("form_token", ""), form,
                             request.cookies.get(CSRF_COOKIE, ""))
    if issued is None:
        return None
    age = now - issued
    return age if -60 <= age <= FORM_MAX_AGE else None


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The body, refused past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise TooLarge
    return bytes(data)


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() \
        == "application/json"


def parse_form(body: bytes) -> dict[str, list[str]]:
    """URL-encoded fields; undecodable bytes become U+FFFD, never an error."""
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True,
                    max_num_fields=100)


def parse_json(body: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def first(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[0]


def network(request: Request) -> str | None:
    """The requester's network (IPv4 /24, IPv6 /48). Behind a proxy, uvicorn
    takes the client from X-Forwarded-For when the proxy is trusted
    (``--forwarded-allow-ips``, 127.0.0.1 by default)."""
    return network_of(request.client.host if request.client else None)


def too_large(settings: Settings) -> HTMLResponse:
    return layout(settings, "Request too large",
                  "<p>That was more than a form like this can hold. Please go back and "
                  "try again.</p>", status=413)


def too_many(settings: Settings, retry_after: int) -> HTMLResponse:
    minutes = max(1, (retry_after + 59) // 60)
    return layout(settings, "Too many requests",
                  f"<p>We received too many sign-ups from your network. Please try again in "
                  f"{minutes} minute{'s' if minutes != 1 else ''}.</p>",
                  status=429, headers={"Retry-After": str(retry_after)})
