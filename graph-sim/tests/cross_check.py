#!/usr/bin/env python3
"""Cross-checks the `graph-sim` binary from outside, over HTTP on loopback, with an independent
implementation of the subscriber's side (graphsim.py: Python `cryptography`, i.e. OpenSSL): a
certificate made by `graphsim.py keygen`, a subscription with resource data, a colleague's
message, its notification decrypted by `graphsim.py decrypt`, and the validation token's RS256
signature checked against the simulator's JWKS. Prints one line per check; exits 1 if any failed.

usage: python3 graph-sim/tests/cross_check.py PATH/TO/graphsim.py PATH/TO/graph-sim
       (build the binary with `cargo build -p graph-sim`: target/debug/graph-sim)

`cargo test` never runs this (it needs Python and `cryptography`); everything stays on 127.0.0.1
and in a fresh temporary folder.
"""
import base64, datetime as dt, http.client, http.server, json, os, re, signal, subprocess, sys
import tempfile, threading, time, urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GRAPHSIM, BIN = sys.argv[1], sys.argv[2]
W = tempfile.mkdtemp(prefix="cross-check-graph-sim-")
APP = "11111111-2222-3333-4444-555555555555"
TEN = "4dc1fe35-8ac6-4f0d-904a-7ebcd364bea1"
USER = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
CHANGE_TRACKING = "0bf30f3b-4a52-48df-9a82-234910c4a086"
CS = "secretClientState"

fails = 0
def check(name, cond, detail=""):
    global fails
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
    if not cond:
        fails += 1

def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

# The subscriber's certificate, by the independent implementation.
subprocess.run([sys.executable, GRAPHSIM, "keygen", "--out", f"{W}/k", "--cert-id", "c1"],
               check=True, stdout=subprocess.DEVNULL)
with open(f"{W}/k/cert.json") as f:
    meta = json.load(f)

# A webhook: echoes handshakes (the decoded token, text/plain), keeps notifications.
received, handshakes = [], []
class Hook(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        query = urllib.parse.urlparse(self.path).query
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        token = urllib.parse.parse_qs(query).get("validationToken")
        if token:
            handshakes.append(token[0])
            reply, status, ctype = token[0].encode(), 200, "text/plain; charset=utf-8"
        else:
            received.append((body, self.headers.get("Content-Length")))
            reply, status, ctype = b"", 202, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
threading.Thread(target=hook.serve_forever, daemon=True).start()
hook_url = f"http://127.0.0.1:{hook.server_address[1]}/notify"

# The simulator.
sim = subprocess.Popen([BIN, "--listen", "127.0.0.1:0", "--tenant-id", TEN, "--app-id", APP,
                        "--user-id", USER, "--seed", "1", "--accept-any-token"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
line = sim.stdout.readline().decode().strip()
m = re.fullmatch(r"graph: http://127\.0\.0\.1:(\d+)/", line)
check("prints 'graph: http://HOST:PORT/' once it serves", m is not None, line)
if not m:
    sim.kill()
    sys.exit(1)
port = int(m.group(1))

def req(method, path, body=None, auth=True):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if auth:
        headers["Authorization"] = "Bearer anything"
    c.request(method, path, None if body is None else json.dumps(body), headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data

status, _, data = req("POST", "/v1.0/chats", {"chatType": "oneOnOne", "members": [
    {"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"],
     "user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{USER}')"},
    {"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"],
     "user@odata.bind": "https://graph.microsoft.com/v1.0/users('adele@contoso.com')"}]})
check("POST /v1.0/chats -> 201", status == 201, data)
chat = json.loads(data)["id"]
quoted = urllib.parse.quote(chat, safe="")

expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
status, _, data = req("POST", "/v1.0/subscriptions", {
    "changeType": "created,updated", "notificationUrl": hook_url, "resource": f"/chats/{chat}/messages",
    "includeResourceData": True, "encryptionCertificate": meta["encryptionCertificate"],
    "encryptionCertificateId": "c1", "expirationDateTime": expires, "clientState": CS})
check("subscription with resource data -> 201", status == 201, data)
sub = json.loads(data)
check("the handshake echoed a decoded, opaque token", len(handshakes) == 1 and " " in handshakes[0], handshakes)

status, _, data = req("POST", f"/_sim/chats/{quoted}/messages",
                      {"from": {"id": "82af01c5-f7cc-4a2e-a728-3a5df21afd9d", "displayName": "Adele Vance"},
                       "content": "Hello from a colleague", "contentType": "text"}, auth=False)
check("a colleague writes -> 201", status == 201, data)
message = json.loads(data)

deadline = time.time() + 10
while not received and time.time() < deadline:
    time.sleep(0.02)
check("one notification arrives", len(received) == 1, received)
if received:
    raw, length = received[0]
    check("with Content-Length", length == str(len(raw)), length)
    body = json.loads(raw)
    item = body["value"][0]
    check("changeType created, lowercase", item["changeType"] == "created", item["changeType"])
    check("clientState, tenantId, subscriptionId",
          item["clientState"] == CS and item["tenantId"] == TEN and item["subscriptionId"] == sub["id"], item)
    check("resource chats('..')/messages('..')",
          item["resource"] == f"chats('{chat}')/messages('{message['id']}')", item["resource"])
    check("encryptedContent names the certificate",
          item["encryptedContent"]["encryptionCertificateId"] == "c1"
          and item["encryptedContent"]["encryptionCertificateThumbprint"] == meta["encryptionCertificateThumbprint"],
          item["encryptedContent"].get("encryptionCertificateThumbprint"))
    out = subprocess.run([sys.executable, GRAPHSIM, "decrypt", "--cert-dir", f"{W}/k"], input=raw,
                         capture_output=True, check=False)
    check("graphsim.py decrypt (OpenSSL) opens it", out.returncode == 0, out.stderr.decode()[-300:])
    if out.returncode == 0:
        plain = json.loads(out.stdout.decode().splitlines()[0])
        check("the plaintext is the message as Graph holds it",
              plain["id"] == message["id"] and plain["body"]["content"] == "Hello from a colleague"
              and plain["from"]["user"]["displayName"] == "Adele Vance", plain)

    tokens = body.get("validationTokens", [])
    check("one validation token", len(tokens) == 1, tokens)
    status, _, jwks = req("GET", "/common/discovery/v2.0/keys", auth=False)
    check("JWKS served", status == 200, status)
    if tokens and status == 200:
        head_b64, claims_b64, sig_b64 = tokens[0].split(".")
        header, claims = json.loads(b64url_decode(head_b64)), json.loads(b64url_decode(claims_b64))
        key = next((k for k in json.loads(jwks)["keys"] if k["kid"] == header["kid"]), None)
        check("the token's kid is in the JWKS, alg RS256", key is not None and header["alg"] == "RS256", header)
        if key:
            public = rsa.RSAPublicNumbers(int.from_bytes(b64url_decode(key["e"]), "big"),
                                          int.from_bytes(b64url_decode(key["n"]), "big")).public_key()
            try:
                public.verify(b64url_decode(sig_b64), f"{head_b64}.{claims_b64}".encode(),
                              padding.PKCS1v15(), hashes.SHA256())
                check("RS256 signature verifies (OpenSSL)", True)
            except Exception as e:
                check("RS256 signature verifies (OpenSSL)", False, e)
        now = time.time()
        check("claims: aud, iss, appid/azp, exp",
              claims["aud"] == APP and claims["iss"] == f"https://sts.windows.net/{TEN}/"
              and claims.get("appid") == CHANGE_TRACKING and claims.get("azp") == CHANGE_TRACKING
              and claims["exp"] > now >= claims["nbf"] - 60, claims)

status, _, data = req("GET", "/v1.0/no/such/path")
err = json.loads(data).get("error", {})
check("unknown path: 404 in Graph's error shape", status == 404 and "code" in err and "message" in err, data)
status, _, data = req("GET", f"/v1.0/chats/{quoted}/messages?$top=51")
check("$top=51 -> 400", status == 400, status)
status, _, data = req("GET", "/_sim/deliveries", auth=False)
d = json.loads(data)
check("deliveries: one attempted, one delivered", d["attempted"] == 1 and d["delivered"] == 1, d)

sim.send_signal(signal.SIGTERM)
try:
    code = sim.wait(timeout=10)
except subprocess.TimeoutExpired:
    sim.kill()
    code = None
check("SIGTERM: exits 0", code == 0, code)
bad = subprocess.run([BIN, "--seed", "many"], capture_output=True)
check("bad arguments: message on stderr, exit 2", bad.returncode == 2 and bad.stderr, bad.returncode)
hook.shutdown()
print(f"{'all passed' if fails == 0 else f'{fails} failed'}")
sys.exit(1 if fails else 0)
