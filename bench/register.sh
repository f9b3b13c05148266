#!/usr/bin/env bash
# Measures what a registration costs on the server, each figure beside its
# floor (what the same job costs done the simplest way) and their ratio:
#
#   - a new registration into a `hosts` of 1, 50,000 and 200,000 lines (time
#     and peak RSS of bpc-register), against the seed's shell way
#     (`grep -q` + `echo >>`) on the same file, and into 50,000 lines with
#     50,000 per-host configs beside `hosts`;
#   - 16 concurrent clients' registrations per second through the forced
#     command, run as nobody as sshd runs it as BackupPC's account (those
#     that wait for the lock together are committed together), against the
#     sync floor: the flushes that keep one registration whole across a
#     crash (HOST.pl, the undo record, the journal, hosts, the folder three
#     times), in a registration's order under the same lock, with nothing
#     else, on the same disk; and against the same floor when each of its
#     registrations also starts a bpc-register process, as sshd does; and
#     the same clients over https:// to `bpc-register serve` (run as
#     nobody, a test CA), which starts no process per registration, against
#     the same floor; five rounds in turn, the median shown;
#   - a users file of 5,000 users and a static resolver of 65,000 lines,
#     against a users file of one user and a resolver of one line: once
#     their indexes are written, and at the first request after both
#     files changed (read whole, indexes written);
#   - a registration over ssh:// on 127.0.0.1, against an ssh login that runs
#     /bin/true: the server's share;
#   - a re-registration against slapd over ldap://, StartTLS and ldaps://,
#     against OpenLDAP's own `ldapwhoami` the same way, and with the DNS
#     resolver against dnsmasq, against `dig` asking the same two questions.
#
#   sudo bash bench/register.sh [ROUNDS]            (default 9; medians)
#
# BPC_REGISTER=/path/to/bpc-register measures that build instead of
# building this tree's. Everything runs on 127.0.0.1 with its own sshd,
# slapd, dnsmasq, account and folder, all removed at the end; every loop
# is bounded.
set -euo pipefail
rounds=${1:-9}
cd "$(dirname "$0")/.."
source bench/common.sh
[ "$(id -u)" -eq 0 ] || { echo "run as root: it creates an account and starts sshd, slapd and dnsmasq" >&2; exit 2; }
for tool in /usr/bin/setpriv /usr/sbin/sshd /usr/sbin/slapd /usr/sbin/slapadd /usr/sbin/slappasswd /usr/bin/ldapwhoami \
    /usr/sbin/dnsmasq /usr/bin/dig /usr/bin/python3 /usr/bin/openssl /usr/bin/time; do
    [ -x "$tool" ] || missing=1
done
if [ -n "${missing:-}" ]; then
    apt-get install -y -q --no-install-recommends openssh-server slapd ldap-utils dnsmasq-base bind9-dnsutils \
        python3 openssl time >/dev/null
fi

if [ -z "${BPC_REGISTER:-}" ]; then
    cargo build --release --locked -q -p bpc-register
    BPC_REGISTER=target/release/bpc-register
fi
program=$(readlink -f "$BPC_REGISTER")
account=bpceregbench
work=$(mktemp -d /var/lib/bpc-enroll-bench-register.XXXXXX)
chmod 0755 "$work"
pids=() serve_pid=
cleanup() {
    [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null|| true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    id "$account" >/dev/null 2>&1 && userdel "$account" || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The measuring helpers: one run of a command with a clean environment (its
# wall time in ms and its peak RSS in KiB, from wait4), clients in parallel,
# and the sync floor.
cat >"$work/measure.py" <<'PY'
import fcntl, os, socket, ssl, subprocess, sys, tempfile, threading, time

def run(env, argv):
    """One run: wall ms and CPU ms (user + system) of the child alone. The
    CPU time does not depend on what else the machine's disk is doing."""
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)])
    _, status, usage = os.wait4(pid, 0)
    elapsed = (time.perf_counter() - start) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} exited {os.waitstatus_to_exitcode(status)}")
    return elapsed, (usage.ru_utime + usage.ru_stime) * 1000

def peak_rss(env, argv):
    """The child's peak RSS in KiB, through GNU time: a child spawned from
    here inherits this interpreter's high-water mark across exec."""
    fd, out = tempfile.mkstemp()
    os.close(fd)
    try:
        run(env, ["/usr/bin/time", "-f", "%M", "-o", out] + argv)
        with open(out) as f:
            return int(f.read().split()[-1])
    finally:
        os.unlink(out)

def parse_env(args):
    env, rest = {}, list(args)
    while rest and rest[0] != "--":
        key, _, value = rest.pop(0).partition("=")
        if key == "CLIENT":
            key, value = "SSH_CONNECTION", f"{value} 50000 127.0.0.1 22"
        env[key] = value
    return env, rest[1:]

def in_parallel(count, per_client, one):
    """`count` clients in threads, each calling one(CLIENT, N) for N from 1
    to `per_client` in a row and stopping at its first error (a string);
    registrations per second over the whole."""
    errors = []
    def client(c):
        for n in range(1, per_client + 1):
            error = one(c, n)
            if error:
                errors.append(error)
                return
    threads = [threading.Thread(target=client, args=(c,)) for c in range(1, count + 1)]
    start = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    elapsed = time.perf_counter() - start
    if errors:
        sys.exit(errors[0])
    return count * per_client / elapsed

def clients(count, per_client, env, argv):
    """`count` clients, each `per_client` registrations in a row from its own
    addresses (127.1.CLIENT.N), a process each."""
    def one(c, n):
        try:
            run(dict(env, SSH_CONNECTION=f"127.1.{c}.{n} 50000 127.0.0.1 22"), argv)
        except SystemExit as error:
            return str(error)
    return in_parallel(count, per_client, one)

def https_clients(port, ca, count, per_client, prefix="127.1"):
    """The same clients over https:// to `bpc-register serve`: a TLS
    connection per registration, each from the client's own address
    (PREFIX.CLIENT.N)."""
    context = ssl.create_default_context(cafile=ca)
    body = b"os=linux&logon=alice&proto=2"
    request = (f"POST /register HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Content-Type: application/x-www-form-urlencoded\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    def one(c, n):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60,
                                          source_address=(f"{prefix}.{c}.{n}", 0)) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(request)
                    answer = b""
                    while chunk := tls.recv(65536):
                        answer += chunk
        except OSError as error:
            return repr(error)
        if not answer.startswith(b"HTTP/1.1 200 "):
            return answer.decode(errors="replace")
    return in_parallel(count, per_client, one)

def sync_floor(folder, count, per_client, program=None):
    """What a registration's flushes alone allow, under BackupPC's lock, in
    the order a registration makes them: the new HOST.pl as a temp file
    (fsync), the undo record (fsync, then the folder), the journal line
    (fdatasync), HOST.pl renamed in, the hosts line appended (fdatasync),
    one flush of the folder, then the record removed and the folder
    flushed again: seven flushes. With `program` (argv), each registration
    first starts that program and waits for it, outside the lock, as sshd
    starts a forced command for every request."""
    hosts = os.path.join(folder, "hosts")
    with open(hosts, "w") as f:
        f.write("host dhcp user moreUsers\n")
    def one(c):
        lock = os.open(os.path.join(folder, "LOCK"), os.O_WRONLY | os.O_CREAT, 0o644)
        for n in range(per_client):
            if program:
                pid = os.posix_spawn(program[0], program, {}, file_actions=[
                    (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
                os.waitpid(pid, 0)
            fcntl.flock(lock, fcntl.LOCK_EX)
            directory = os.open(folder, os.O_RDONLY)
            temp = os.path.join(folder, ".bpc-enroll-new.config")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"$Conf{XferMethod} = 'rsync';\n" * 8)
            os.fsync(fd)
            os.close(fd)
            undo = os.path.join(folder, ".undo")
            fd = os.open(undo, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            os.write(fd, b'{"journal_len":0,"hosts_appended":[1,2,3,4]}')
            os.fsync(fd)
            os.close(fd)
            os.fsync(directory)
            journal = os.open(os.path.join(folder, "journal"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            os.write(journal, b'{"time":"2026-01-01T00:00:00Z","host":"h","owner":"alice","action":"added"}\n')
            os.fdatasync(journal)
            os.close(journal)
            os.rename(temp, os.path.join(folder, f"c{c}-{n}.example.org.pl"))
            fd = os.open(hosts, os.O_WRONLY | os.O_APPEND)
            os.write(fd, f"c{c}-{n}.example.org\t0\talice\n".encode())
            os.fdatasync(fd)
            os.close(fd)
            os.fsync(directory)
            os.unlink(undo)
            os.fsync(directory)
            os.close(directory)
            fcntl.flock(lock, fcntl.LOCK_UN)
        os._exit(0)
    start = time.perf_counter()
    children = []
    for c in range(count):
        pid = os.fork()
        if pid == 0:
            one(c)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return count * per_client / (time.perf_counter() - start)

mode = sys.argv[1]
if mode == "run":
    rounds = int(sys.argv[2])
    env, argv = parse_env(sys.argv[3:])
    prepare = env.pop("PREPARE", None)
    times, cpus = [], []
    for _ in range(rounds):
        if prepare:
            subprocess.run(["/bin/sh", "-c", prepare], check=True)
        wall, cpu = run(env, argv)
        times.append(wall)
        cpus.append(cpu)
    times.sort()
    cpus.sort()
    if prepare:
        subprocess.run(["/bin/sh", "-c", prepare], check=True)
    print(f"{times[len(times) // 2]:.2f} {cpus[len(cpus) // 2]:.2f} {peak_rss(env, argv)}")
elif mode == "clients":
    env, argv = parse_env(sys.argv[4:])
    print(f"{clients(int(sys.argv[2]), int(sys.argv[3]), env, argv):.1f}")
elif mode == "https":
    print(f"{https_clients(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:]):.1f}")
elif mode == "syncfloor":
    print(f"{sync_floor(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]):.1f}")
PY
measure() { /usr/bin/python3 "$work/measure.py" "$@"; }
# The forced command runs as BackupPC's account, never as root: nobody
# stands for it here (as for `serve`), and the clients start it as nobody.
as_account() { # measure ARGS...: the measuring driver, and what it starts, as nobody
    shift
    setpriv --reuid 65534 --regid 65534 --clear-groups -- /usr/bin/python3 "$work/measure.py" "$@"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
row() { # what figure unit floor-name floor [cpu floor-cpu]
    local cpu=
    [ -n "${6:-}" ] && cpu=$(printf '   (CPU %s ms vs %s ms, ratio %s)' "$6" "$7" "$(ratio "$6" "$7")")
    printf '%-52s %9s %-3s | %-30s %9s | ratio %5s%s\n' "$1" "$2" "$3" "$4" "$5" "$(ratio "$2" "$5")" "$cpu"
}

# One server folder: BackupPC's configuration folder, a users file, a static
# resolver, the backup key; `reload-command = []` (BackupPC's own reload is
# its business, not ours).
ssh-keygen -q -t ed25519 -N '' -C backuppc@bench -f "$work/backuppc_key"
hash='$argon2id$v=19$m=19456,t=2,p=1$qyNA4FgBT6uUVzXBFOPAFQ$ZkVH4SB/sZDiNCqiYIVcRhBtywAnxO8mWcmxK3x6sBY'
server() { # folder directory-table resolver-table
    mkdir -p "$1/backuppc"
    printf 'host dhcp user moreUsers\n' >"$1/backuppc/hosts"
    printf '$Conf{CgiUserConfigEditEnable} = 0;\n' >"$1/backuppc/config.pl"
    cat >"$1/server.toml" <<TOML
domain = "example.org"
journal = "journal.jsonl"
[backuppc]
conf-dir = "backuppc"
url = "http://backup.example.org/backuppc/index.cgi?host={host}"
key = "$work/backuppc_key.pub"
reload-command = []
$2
$3
[log]
kind = "file"
path = "register.log"
TOML
}
file_directory='[directory]
kind = "file"
path = "users.toml"'
static_resolver='[resolver]
kind = "static"
path = "hosts.static"'
small_backends() { # folder
    printf '[users.alice]\nname = "Alice"\npassword = "%s"\n' "$hash" >"$1/users.toml"
    printf '127.0.0.1 pc-ssh.example.org\n127.0.0.2 pc-bench.example.org\n' >"$1/hosts.static"
}
register_env() { # client-ip: the environment sshd gives bpc-register
    echo "SSH_ORIGINAL_COMMAND=linux:alice CLIENT=$1 --"
}

echo "bpc-register: $program"
echo "rounds: $rounds (medians of wall time; peak RSS of one more run, through GNU time)"
echo

# 1. A new registration into hosts of 1, 50,000 and 200,000 lines.
base="$work/base"
server "$base" "$file_directory" "$static_resolver"
small_backends "$base"
for lines in 1 50000 200000; do
    template="$work/hosts-$lines"
    {
        printf 'host dhcp user moreUsers\n'
        awk -v n="$lines" 'BEGIN { for (i = 1; i <= n; i++) printf "host-%d.example.org\t0\tuser%d\n", i, i % 5000 }'
    } >"$template"
    prepare="cp $template $base/backuppc/hosts && rm -f $base/backuppc/pc-bench.example.org.pl"
    read -r ms cpu kib < <(measure run "$rounds" PREPARE="$prepare" $(register_env 127.0.0.2) \
        "$program" --config "$base/server.toml")
    seed='grep -q "^pc-bench.example.org[[:space:]]" hosts || echo "pc-bench.example.org 0 alice" >> hosts'
    read -r floor floor_cpu _ < <(measure run "$rounds" PREPARE="$prepare" PATH=/usr/bin:/bin -- /bin/sh -c "cd $base/backuppc && $seed")
    row "new registration, hosts of $lines lines" "$ms" ms "grep -q + echo >>" "$floor" "$cpu" "$floor_cpu"
    row "  its peak RSS" "$(mib "$kib")" MiB "(goal at 50,000 lines)" 8
    [ "$lines" = 1 ] && alone=$ms alone_cpu=$cpu
done
# The same 50,000 lines with a config per host in conf-dir, as a server
# that registered them has: nothing may list that folder per request.
many="$work/many"
server "$many" "$file_directory" "$static_resolver"
small_backends "$many"
/usr/bin/python3 -c 'import sys
for i in range(1, 50001):
    open(f"{sys.argv[1]}/host-{i}.example.org.pl", "w").write("$Conf{XferMethod} = \"rsync\";\n")' "$many/backuppc"
prepare="cp $work/hosts-50000 $many/backuppc/hosts && rm -f $many/backuppc/pc-bench.example.org.pl"
read -r ms cpu kib < <(measure run "$rounds" PREPARE="$prepare" $(register_env 127.0.0.2) \
    "$program" --config "$many/server.toml")
read -r floor floor_cpu _ < <(measure run "$rounds" PREPARE="$prepare" PATH=/usr/bin:/bin -- /bin/sh -c "cd $many/backuppc && $seed")
row "  the same with 50,000 HOST.pl in conf-dir" "$ms" ms "grep -q + echo >>" "$floor" "$cpu" "$floor_cpu"

# 2. 16 concurrent clients, 25 new registrations each.
clients=16 per_client=25
conc="$work/concurrent"
server "$conc" "$file_directory" "$static_resolver"
small_backends "$conc"
for ((c = 1; c <= clients; c++)); do
    for ((n = 1; n <= per_client; n++)); do printf '127.1.%d.%d c%d-%d.example.org\n' "$c" "$n" "$c" "$n"; done
done >>"$conc/hosts.static"
# The same clients over https:// to `bpc-register serve` (as nobody, a
# test CA), which keeps its backends loaded and starts no process per
# registration; 127.2.1.1 is its first request, before the clients.
served="$work/served"
server "$served" "$file_directory" "$static_resolver"
small_backends "$served"
{ cat "$conc/hosts.static"; echo "127.2.1.1 warm.example.org"; } >"$served/hosts.static"
test_ca "$served"
# The disk's speed changes from one second to the next on a shared
# machine: the clients and the floors run in turn, five times each, each
# time into fresh folders that stay until the end (on ext4 without a
# journal, files deleted a moment before slow down every file created
# after them in the same block group), and the round whose ratio to the
# sync floor is the median is shown. The second floor starts a process
# of this bpc-register (`--version`) before each registration, as sshd
# does for every request: what is left above it is the registration's
# own work. The clients over https:// run last, against the same floor.
# Each round measures a server in its steady state: the users
# file and the resolver have settled and are indexed, and BackupPC's
# config.pl, old, has been checked once (a changed config.pl is checked
# again by running Perl, as the first registration after it does).
https_round() { # round: served_rate, registrations per second over https://, into a fresh folder
    local port registered
    port=$(free_port)
    sed -e "s|^journal = .*|journal = \"journal-$1.jsonl\"|" \
        -e "s|^conf-dir = .*|conf-dir = \"backuppc-$1\"|" "$served/server.toml" >"$served/server-$1.toml"
    printf '[https]\nlisten = ["127.0.0.1:%s"]\ncert = "server.crt"\nkey = "server.key"\n' "$port" >>"$served/server-$1.toml"
    mkdir "$served/backuppc-$1"
    printf 'host dhcp user moreUsers\n' >"$served/backuppc-$1/hosts"
    printf '$Conf{CgiUserConfigEditEnable} = 0;\n' >"$served/backuppc-$1/config.pl"
    touch -d '-1 hour' "$served/backuppc-$1/config.pl"
    chown -R 65534:65534 "$served"
    setpriv --reuid 65534 --regid 65534 --clear-groups -- \
        "$program" serve --config "$served/server-$1.toml" 2>"$served/serve-$1.log" &
    serve_pid=$!
    wait_for_line "$served/serve-$1.log" "listening on"
    measure https "$port" "$served/ca.crt" 1 1 127.2 >/dev/null
    served_rate=$(measure https "$port" "$served/ca.crt" "$clients" "$per_client")
    kill "$serve_pid"
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=
    registered=$(grep -c '^c[0-9]*-[0-9]*\.example\.org' "$served/backuppc-$1/hosts")
    [ "$registered" -eq $((clients * per_client)) ] || { echo "only $registered registrations landed over https://" >&2; exit 1; }
}
rounds_out=() served_out=()
sleep 3
for ((round = 1; round <= 5; round++)); do
    sed -e "s|^journal = .*|journal = \"journal-$round.jsonl\"|" \
        -e "s|^conf-dir = .*|conf-dir = \"backuppc-$round\"|" "$conc/server.toml" >"$conc/server-$round.toml"
    mkdir "$conc/backuppc-$round"
    printf 'host dhcp user moreUsers\n' >"$conc/backuppc-$round/hosts"
    printf '$Conf{CgiUserConfigEditEnable} = 0;\n' >"$conc/backuppc-$round/config.pl"
    touch -d '-1 hour' "$conc/backuppc-$round/config.pl"
    chown -R 65534:65534 "$conc"
    as_account measure run 1 $(register_env 127.0.0.2) "$program" --config "$conc/server-$round.toml" >/dev/null
    rate=$(as_account measure clients "$clients" "$per_client" SSH_ORIGINAL_COMMAND=linux:alice -- "$program" --config "$conc/server-$round.toml")
    registered=$(grep -c '^c[0-9]*-[0-9]*\.example\.org' "$conc/backuppc-$round/hosts")
    [ "$registered" -eq $((clients * per_client)) ] || { echo "only $registered registrations landed" >&2; exit 1; }
    mkdir "$work/syncfloor-$round" "$work/syncfloor-started-$round"
    floor=$(measure syncfloor "$work/syncfloor-$round" "$clients" "$per_client")
    started_floor=$(measure syncfloor "$work/syncfloor-started-$round" "$clients" "$per_client" "$program" --version)
    https_round "$round"
    # Registrations per second: a floor is the larger rate, so a ratio is floor/rate.
    rounds_out+=("$(ratio "$floor" "$rate") $rate $floor $started_floor $(ratio "$started_floor" "$rate")")
    served_out+=("$(ratio "$floor" "$served_rate") $served_rate $floor")
done
read -r _ rate floor started_floor _ < <(printf '%s\n' "${rounds_out[@]}" | sort -n | sed -n 3p)
read -r _ served_rate served_floor < <(printf '%s\n' "${served_out[@]}" | sort -n | sed -n 3p)
printf '%-52s %9s %-3s | %-30s %9s | ratio %5s   (ratios of the 5 rounds: %s)\n' \
    "$clients concurrent clients, registrations" "$rate" "/s" "sync floor (7 flushes, locked)" "$floor" \
    "$(ratio "$floor" "$rate")" "$(printf '%s\n' "${rounds_out[@]}" | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')"
printf '%-52s %9s %-3s | %-30s %9s | ratio %5s   (ratios of the 5 rounds: %s)\n' \
    "  the same, against the floor with a process each" "$rate" "/s" "sync floor + bpc-register start" "$started_floor" \
    "$(ratio "$started_floor" "$rate")" "$(printf '%s\n' "${rounds_out[@]}" | cut -d' ' -f5 | tr '\n' ' ' | sed 's/ $//')"
printf '%-52s %9s %-3s | %-30s %9s | ratio %5s   (ratios of the 5 rounds: %s)\n' \
    "  the same clients over https:// (serve)" "$served_rate" "/s" "sync floor (7 flushes, locked)" "$served_floor" \
    "$(ratio "$served_floor" "$served_rate")" "$(printf '%s\n' "${served_out[@]}" | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')"
# What starting a process costs here, which the floor (forked, not
# executed) does not pay and a forced command always does: the same
# clients running /bin/true.
started=$(measure clients "$clients" "$per_client" X=1 -- /bin/true)
printf '%-52s %9s %-3s | %-30s %9s |\n' "  the same clients running /bin/true" "$started" "/s" "" ""

# 3. A users file of 5,000 users and a static resolver of 65,000 lines.
big="$work/big"
server "$big" "$file_directory" "$static_resolver"
{
    for ((n = 1; n <= 5000; n++)); do printf '[users.user%d]\nname = "User %d"\npassword = "%s"\n' "$n" "$n" "$hash"; done
    printf '[users.alice]\nname = "Alice"\npassword = "%s"\n' "$hash"
} >"$big/users.toml"
awk 'BEGIN { for (i = 0; i < 65000; i++) printf "10.%d.%d.%d other-%d.example.org alias-%d\n", i / 65536, (i / 256) % 256, i % 256, i, i }' \
    >"$big/hosts.static"
printf '127.0.0.2 pc-bench.example.org\n' >>"$big/hosts.static"
prepare="cp $work/hosts-1 $big/backuppc/hosts && rm -f $big/backuppc/pc-bench.example.org.pl"
# A file is indexed once it has not changed for a few seconds; the first
# registration after that writes the indexes, the ones after read them.
settle_backends() { sleep 3; measure run 1 PREPARE="$prepare" $(register_env 127.0.0.2) "$program" --config "$big/server.toml" >/dev/null; }
settle_backends
read -r ms cpu _ < <(measure run "$rounds" PREPARE="$prepare" $(register_env 127.0.0.2) \
    "$program" --config "$big/server.toml")
row "new registration, 5,000 users, 65,000-line resolver" "$ms" ms "1 user, 2-line resolver" "$alone" "$cpu" "$alone_cpu"
# The first request after both files changed reads and checks them whole
# (and, once they have settled, writes their indexes).
touch "$big/users.toml" "$big/hosts.static"
sleep 3
read -r ms cpu _ < <(measure run 1 PREPARE="$prepare" $(register_env 127.0.0.2) "$program" --config "$big/server.toml")
row "  the first one after both files changed" "$ms" ms "1 user, 2-line resolver" "$alone" "$cpu" "$alone_cpu"

# 4. ssh:// on 127.0.0.1: the registration against a login running /bin/true.
useradd --system --user-group --no-create-home --home-dir "$work/home" --shell /bin/sh --password '*' "$account"
sshdir="$work/ssh"
server "$sshdir" "$file_directory" "$static_resolver"
small_backends "$sshdir"
chown -R "$account:" "$sshdir"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/register_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/plain_key"
mkdir -p "$work/keys"
{
    printf 'restrict,command="%s --config %s" %s\n' "$program" "$sshdir/server.toml" "$(cat "$work/register_key.pub")"
    printf 'restrict %s\n' "$(cat "$work/plain_key.pub")"
} >"$work/keys/$account"
port=$(free_port)
cat >"$work/sshd_config" <<CONFIG
ListenAddress 127.0.0.1:$port
HostKey $work/host_key
PidFile none
AuthorizedKeysFile $work/keys/%u
AllowUsers $account
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
CONFIG
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
pids+=($!)
wait_for_line "$work/sshd.log" "Server listening"
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$work/host_key.pub")" >"$work/known_hosts"
ssh_to() { # key command
    echo /usr/bin/ssh -F /dev/null -x -a -i "$work/$1" -p "$port" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$work/known_hosts" -l "$account" 127.0.0.1 "$2"
}
prepare="cp $work/hosts-1 $sshdir/backuppc/hosts && chown $account: $sshdir/backuppc/hosts && rm -f $sshdir/backuppc/pc-ssh.example.org.pl"
read -r over_ssh _ _ < <(measure run "$rounds" PREPARE="$prepare" -- $(ssh_to register_key linux:alice))
grep -q '^pc-ssh.example.org' "$sshdir/backuppc/hosts" || { echo "the ssh:// registration did not land" >&2; exit 1; }
read -r login _ _ < <(measure run "$rounds" -- $(ssh_to plain_key /bin/true))
row "new registration over ssh:// (127.0.0.1)" "$over_ssh" ms "ssh login running /bin/true" "$login"
share=$(awk -v a="$alone" -v s="$over_ssh" 'BEGIN { printf "%.1f", 100 * a / s }')
extra=$(awk -v l="$login" -v s="$over_ssh" 'BEGIN { printf "%.1f", 100 * (s - l) / s }')
printf '%-52s %9s %-3s | %-30s %9s |\n' "  server's share (bpc-register alone / over ssh)" "$share" "%" "(ssh - login) / ssh" "$extra %"

# 5. The directory over LDAP (ldap://, StartTLS, ldaps://) and the DNS.
ldap="$work/ldap"
mkdir -p "$ldap/db"
test_ca "$ldap" DNS:localhost,IP:127.0.0.1
people="ou=people,dc=example,dc=org" reader="cn=reader,dc=example,dc=org"
cat >"$ldap/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $ldap/slapd.pid
TLSCACertificateFile $ldap/ca.crt
TLSCertificateFile $ldap/server.crt
TLSCertificateKeyFile $ldap/server.key
database mdb
maxsize 104857600
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
directory $ldap/db
index uid eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="$reader" read by * none
CONF
cat >"$ldap/seed.ldif" <<LDIF
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: $people
objectClass: organizationalUnit
ou: people

dn: $reader
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: $(/usr/sbin/slappasswd -h '{SSHA}' -s reader-secret)

dn: uid=alice,$people
objectClass: inetOrgPerson
uid: alice
cn: alice
sn: alice
LDIF
/usr/sbin/slapadd -q -f "$ldap/slapd.conf" -l "$ldap/seed.ldif"
printf 'reader-secret' >"$ldap/reader.secret"
chmod 0600 "$ldap/reader.secret"
ldap_port=$(free_port) ldaps_port=$(free_port)
/usr/sbin/slapd -f "$ldap/slapd.conf" -h "ldap://127.0.0.1:$ldap_port/ ldaps://127.0.0.1:$ldaps_port/" -d none \
    2>"$ldap/slapd.log" &
pids+=($!)
for ((i = 0; i < 200; i++)); do
    LDAPTLS_CACERT="$ldap/ca.crt" /usr/bin/ldapwhoami -x -H "ldaps://127.0.0.1:$ldaps_port" -D "$reader" \
        -y "$ldap/reader.secret" >/dev/null 2>&1 && break
    sleep 0.05
done
ldap_directory() { # url starttls
    printf '[directory]\nkind = "ldap"\nurl = "%s"\nstarttls = %s\nbase = "%s"\nbind-dn = "%s"\nbind-password-file = "%s"\nca-file = "%s"\ntimeout = 5\n' \
        "$1" "$2" "$people" "$reader" "$ldap/reader.secret" "$ldap/ca.crt"
}
reregister() { # folder: median wall and CPU ms of a re-registration (registered once first)
    measure run 1 $(register_env 127.0.0.2) "$program" --config "$1/server.toml" >/dev/null
    measure run "$rounds" $(register_env 127.0.0.2) "$program" --config "$1/server.toml" | cut -d' ' -f1,2
}
files_dir="$work/files-directory"
server "$files_dir" "$file_directory" "$static_resolver"
small_backends "$files_dir"
read -r with_files with_files_cpu < <(reregister "$files_dir")
for kind in ldap starttls ldaps; do
    case $kind in
        ldap) url="ldap://127.0.0.1:$ldap_port" starttls=false whoami=(-H "$url") ;;
        starttls) url="ldap://127.0.0.1:$ldap_port" starttls=true whoami=(-H "$url" -ZZ) ;;
        ldaps) url="ldaps://127.0.0.1:$ldaps_port" starttls=false whoami=(-H "$url") ;;
    esac
    folder="$work/$kind"
    server "$folder" "$(ldap_directory "$url" "$starttls")" "$static_resolver"
    small_backends "$folder"
    read -r ms _ < <(reregister "$folder")
    read -r floor _ _ < <(measure run "$rounds" LDAPTLS_CACERT="$ldap/ca.crt" -- /usr/bin/ldapwhoami -x "${whoami[@]}" \
        -D "$reader" -y "$ldap/reader.secret")
    row "re-registration, LDAP $kind" "$ms" ms "ldapwhoami, $kind" "$floor"
done
row "  (the same with the users file)" "$with_files" ms "" "" "$with_files_cpu" "$with_files_cpu"

dns="$work/dns"
mkdir -p "$dns"
dns_port=$(free_port)
cat >"$dns/dnsmasq.conf" <<CONF
port=$dns_port
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
no-poll
pid-file=$dns/dnsmasq.pid
log-facility=-
user=root
local=/#/
host-record=pc-dns.example.org,192.0.2.2
CONF
/usr/sbin/dnsmasq --conf-file="$dns/dnsmasq.conf" --keep-in-foreground 2>"$dns/dnsmasq.log" &
pids+=($!)
wait_for_line "$dns/dnsmasq.log" "started, version"
server "$dns" "$file_directory" "$(printf '[resolver]\nkind = "dns"\nservers = ["127.0.0.1:%s"]\ntimeout = 2\n' "$dns_port")"
small_backends "$dns"
measure run 1 $(register_env 192.0.2.2) \
    "$program" --config "$dns/server.toml" >/dev/null
read -r ms _ _ < <(measure run "$rounds" $(register_env 192.0.2.2) "$program" --config "$dns/server.toml")
read -r floor _ _ < <(measure run "$rounds" -- /usr/bin/dig +tries=1 +time=2 -p "$dns_port" @127.0.0.1 \
    -x 192.0.2.2 +short pc-dns.example.org A +short)
row "re-registration, DNS resolver" "$ms" ms "dig PTR + A" "$floor"
