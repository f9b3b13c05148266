#!/usr/bin/env bash
# Loads the https:// transport: the real `bpc-register serve` on 127.0.0.1
# (TLS, a test CA), REGISTRATIONS new registrations (default 1,000) from
# CLIENTS concurrent clients (default 32), each request from its own
# loopback source address (127.0.X.Y; the static resolver names each one
# bench-N.example.org, so every registration is a new host), while SLOW
# clients (default 5) trickle request heads a byte at a time and are cut
# off with 408. It prints the latency (p50, p90, p99, max) of a
# registration as a client sees it (TCP connect, TLS handshake, request,
# answer), the throughput, and the slow clients' 408s; then it checks that
# BackupPC's hosts holds every host exactly once and the journal one
# `added` record each: nothing lost, nothing duplicated. Then, beside it,
# the same registrations by the SSH forced command, one process each as sshd
# starts it (without sshd), CLIENTS at once, checked the same way.
#
#   sudo bash bench/https.sh [REGISTRATIONS [CLIENTS [SLOW]]]
#
# BPC_REGISTER=/path/to/bpc-register measures that build instead of
# building this tree's (release). Runs as root (the service runs as
# `nobody` through setpriv: it refuses root); everything is on 127.0.0.1
# in a temporary folder, removed at the end. Every loop is bounded.
set -euo pipefail
registrations=${1:-1000}
clients=${2:-32}
slow=${3:-5}
cd "$(dirname "$0")/.."
source bench/common.sh
[ "$(id -u)" -eq 0 ] || { echo "run as root: the service runs as nobody through setpriv" >&2; exit 2; }
((registrations >= 1 && registrations <= 60000)) || { echo "REGISTRATIONS: 1 to 60000" >&2; exit 2; }
for tool in /usr/bin/python3 /usr/bin/openssl /usr/bin/setpriv /usr/bin/ssh-keygen; do
    [ -x "$tool" ] || { echo "missing $tool" >&2; exit 2; }
done
if [ -z "${BPC_REGISTER:-}" ]; then
    cargo build --release --locked -q -p bpc-register
    BPC_REGISTER=target/release/bpc-register
fi
program=$(readlink -f "$BPC_REGISTER")
work=$(mktemp -d /var/lib/bpc-enroll-bench-https.XXXXXX)
chmod 0755 "$work"
service=
cleanup() {
    [ -n "$service" ] && kill "$service" 2>/dev/null && wait "$service" 2>/dev/null || true
    # The forced command's detached settlers may still write (a second at most).
    rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; }
}
trap cleanup EXIT

# The server folder: BackupPC's configuration folder, one user, a static
# resolver naming 127.0.X.Y (X from 1) bench-N.example.org, the backup key,
# a CA and the server's certificate.
mkdir -p "$work/backuppc" "$work/tls"
printf 'host dhcp user moreUsers\n' >"$work/backuppc/hosts"
printf '$Conf{CgiUserConfigEditEnable} = 0;\n' >"$work/backuppc/config.pl"
printf '[users.alice]\nname = "Alice"\n' >"$work/users.toml"
ssh-keygen -q -t ed25519 -N '' -C backuppc@bench -f "$work/backuppc_key"
/usr/bin/python3 - "$registrations" >"$work/hosts.static" <<'PY'
import sys
for n in range(int(sys.argv[1])):
    print(f"127.0.{1 + n // 250}.{2 + n % 250} bench-{n}.example.org")
PY
test_ca "$work/tls"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/server.toml" <<TOML
domain = "example.org"
journal = "journal.jsonl"
[backuppc]
conf-dir = "backuppc"
url = "http://backup.example.org/backuppc/index.cgi?host={host}"
key = "$work/backuppc_key.pub"
reload-command = []
[directory]
kind = "file"
path = "users.toml"
[resolver]
kind = "static"
path = "hosts.static"
[log]
kind = "file"
path = "register.log"
[https]
listen = ["127.0.0.1:$port"]
cert = "tls/server.crt"
key = "tls/server.key"
timeout = 2
TOML
chown -R 65534:65534 "$work"

# Nothing lost, nothing duplicated: every host once in hosts, one `added`
# record each in the journal.
check() {
/usr/bin/python3 - "$work" "$registrations" <<'PY'
import collections, json, sys
work, total = sys.argv[1], int(sys.argv[2])
expected = {f"bench-{n}.example.org" for n in range(total)}
lines = [line.split()[0] for line in open(f"{work}/backuppc/hosts").read().splitlines()[1:] if line.strip()]
counts = collections.Counter(lines)
duplicated = sorted(host for host, count in counts.items() if count > 1)
missing = sorted(expected - counts.keys())
stray = sorted(counts.keys() - expected)
added = collections.Counter(record["host"] for record in map(json.loads, open(f"{work}/journal.jsonl")) if record["action"] == "added")
journal_off = sorted(host for host in expected if added[host] != 1)
print(f"hosts: {len(lines)} lines, {len(counts)} hosts; missing {len(missing)}, duplicated {len(duplicated)}, "
      f"stray {len(stray)}; journal: {sum(added.values())} added, {len(journal_off)} hosts not exactly once")
if missing or duplicated or stray or journal_off or len(lines) != total:
    print(f"LOST OR DUPLICATED: missing {missing[:5]} duplicated {duplicated[:5]} stray {stray[:5]} journal {journal_off[:5]}",
          file=sys.stderr)
    sys.exit(1)
PY
}

# The load: REGISTRATIONS requests, CLIENTS at once, each from its own
# loopback address 127.0.X.Y; latencies as the client sees them.
cat >"$work/load.py" <<'PY'
import socket, ssl, subprocess, sys, threading, time

def source(n):
    return f"127.0.{1 + n // 250}.{2 + n % 250}"

def load(total, clients, one):
    """Runs one(n) for n below total from `clients` threads: (latencies ms, failures, wall s)."""
    latencies, failures, lock = [], [], threading.Lock()
    queue = iter(range(total))
    def client():
        while True:
            with lock:
                n = next(queue, None)
            if n is None:
                return
            start = time.perf_counter()
            try:
                failure = one(n)
            except OSError as error:
                failure = repr(error)
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                (failures.append((n, failure)) if failure else latencies.append(elapsed))
    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(latencies), failures, time.perf_counter() - start

def report(what, latencies, failures, wall):
    pct = lambda p: latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))] if latencies else float("nan")
    print(f"{len(latencies)} registrations from {what} in {wall:.2f} s: {len(latencies) / wall:.0f} per second")
    print(f"latency ms: p50 {pct(50):.1f}  p90 {pct(90):.1f}  p99 {pct(99):.1f}  max {pct(100):.1f}")
    if failures:
        print(f"{len(failures)} failed, for example {failures[:3]}", file=sys.stderr)
        sys.exit(1)

def https(port, ca, total, clients, slow):
    context = ssl.create_default_context(cafile=ca)
    def register(n):
        body = b"os=linux&logon=alice&proto=2"
        head = (f"POST /register HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(source(n), 0)) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(head + body)
                answer = b""
                while chunk := tls.recv(65536):
                    answer += chunk
        return None if answer.startswith(b"HTTP/1.1 200 ") else answer.decode(errors="replace")
    stop, cut_off, lock = threading.Event(), [0], threading.Lock()
    trickling = threading.Semaphore(0)
    def trickler():
        """Sends a request head a byte every 200 ms until the server cuts it off (408), again and again."""
        head = b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Slow: " + b"a" * 4000
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
                    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                        trickling.release()
                        for byte in head:
                            if stop.is_set():
                                return
                            tls.sendall(bytes([byte]))
                            time.sleep(0.2)
            except OSError:  # ssl.SSLError is one: the server cut it off
                with lock:
                    cut_off[0] += 1
    for _ in range(slow):
        threading.Thread(target=trickler, daemon=True).start()
    # The slow clients are connected and trickling before the load starts
    # (each handshake done; 10 s at most in all).
    deadline = time.monotonic() + 10
    for _ in range(slow):
        if not trickling.acquire(timeout=max(0, deadline - time.monotonic())):
            sys.exit("the slow clients could not connect")
    latencies, failures, wall = load(total, clients, register)
    stop.set()
    report(f"{clients} concurrent clients ({slow} slow clients trickling)", latencies, failures, wall)
    print(f"slow clients cut off (408 or closed): {cut_off[0]}")

def forced(program, config, total, clients):
    def register(n):
        env = {"SSH_ORIGINAL_COMMAND": "linux:alice proto=2", "SSH_CONNECTION": f"{source(n)} 50000 127.0.0.1 22"}
        done = subprocess.run(["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--",
                               program, "--config", config], env=env, capture_output=True, timeout=120)
        return None if done.returncode == 0 else done.stdout.decode(errors="replace")
    report(f"{clients} concurrent processes", *load(total, clients, register))

if sys.argv[1] == "https":
    https(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
else:
    forced(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
PY

setpriv --reuid 65534 --regid 65534 --clear-groups -- "$program" serve --config "$work/server.toml" 2>"$work/serve.err" &
service=$!
wait_for_line "$work/serve.err" "listening on"

/usr/bin/python3 "$work/load.py" https "$port" "$work/tls/ca.crt" "$registrations" "$clients" "$slow"

check

# Beside it: the same registrations by the SSH forced command itself (one
# bpc-register process each, as sshd starts it, without sshd), CLIENTS at
# once, into the same folder emptied again.
kill "$service"
wait "$service" 2>/dev/null || true
service=
rm -f "$work"/backuppc/bench-*.pl "$work/journal.jsonl"
printf 'host dhcp user moreUsers\n' >"$work/backuppc/hosts"
chown -R 65534:65534 "$work"
echo "beside it, the SSH forced command: one process per registration, no sshd:"
/usr/bin/python3 "$work/load.py" forced "$program" "$work/server.toml" "$registrations" "$clients"
check
