#!/usr/bin/env bash
# Measures what rsyncsend costs: a full backup (BackupPC 4's rsync options)
# of a tree through the backup account's forced command, against the same
# rsync through plain ssh with the same account and the same sudo rule.
#
#   sudo bash bench/rsyncsend.sh [SIZE_MIB] [ROUNDS] [narrow]   (defaults: 1024 3)
#
# With `narrow`, allowed-paths is the tree's folder instead of `/`: rsyncsend
# then also asks rsync its version and resolves and pins the path.
#
# Everything runs on 127.0.0.1 with its own sshd, account and folder, and is
# removed at the end. Prints both medians and their ratio.
set -euo pipefail
size_mib=${1:-1024}
rounds=${2:-3}
narrow=${3:-}
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root: it creates an account and starts sshd" >&2; exit 2; }

cargo build --release --locked -q -p bpc-enroll
program=$(readlink -f target/release/bpc-enroll)
account=bpcebench
work=$(mktemp -d /var/lib/bpc-enroll-bench.XXXXXX)
chmod 0755 "$work"
sshd_pid=
cleanup() {
    [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
    id "$account" >/dev/null 2>&1 && userdel "$account" || true
    rm -f "/etc/sudoers.d/bpc-enroll-bench-$account"
    rm -rf "$work"
}
trap cleanup EXIT

echo "making a ${size_mib} MiB tree in $work/tree"
mkdir -p "$work/tree/big" "$work/tree/small"
for ((i = 0; i < size_mib / 16; i++)); do
    head -c $((16 * 1024 * 1024)) /dev/urandom >"$work/tree/big/file-$i"
done
for ((i = 0; i < 2000; i++)); do
    head -c 4096 /dev/urandom >"$work/tree/small/file-$i"
done

useradd --system --user-group --no-create-home --home-dir "$work/home" --shell /bin/sh --password '*' "$account"
mkdir -p "$work/home" && chmod 0750 "$work/home" && chgrp "$account" "$work/home"
allowed=/
[ "$narrow" = narrow ] && allowed=$work/tree
printf 'allow-restore = false\nallowed-paths = ["%s"]\n' "$allowed" >"$work/client.toml"
# The gated key: the rule setup installs. The plain key: rsync's server mode.
rule="$work/sudoers"
{
    printf 'Defaults:%s env_keep += "SSH_ORIGINAL_COMMAND SSH_CONNECTION"\n' "$account"
    printf '%s ALL=(root) NOPASSWD: %s rsyncsend --config %s\n' "$account" "$program" "$work/client.toml"
    printf '%s ALL=(root) NOPASSWD: /usr/bin/rsync --server --sender *\n' "$account"
} >"$rule"
visudo -c -q -f "$rule"
install -m 0440 "$rule" "/etc/sudoers.d/bpc-enroll-bench-$account"

ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/gated"
ssh-keygen -q -t ed25519 -N '' -f "$work/plain"
mkdir -p "$work/keys"
{
    printf 'restrict,command="%s rsyncsend --config %s" %s\n' "$program" "$work/client.toml" "$(cat "$work/gated.pub")"
    printf 'restrict %s\n' "$(cat "$work/plain.pub")"
} >"$work/keys/$account"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
sshd_pid=$!
for ((i = 0; i < 100; i++)); do grep -q "Server listening" "$work/sshd.log" && break; sleep 0.05; done
grep -q "Server listening" "$work/sshd.log" || { cat "$work/sshd.log" >&2; exit 1; }
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$work/host_key.pub")" >"$work/known_hosts"

# The options bpc-register's host config gives BackupPC for a full backup
# (its defaults less --protect-args, which rsyncsend refuses): the remote
# side gets `rsync --server --sender -lHogDtprcxe.iLsfxC --numeric-ids . TREE`.
backup() { # key rsync-path
    rm -rf "$work/dest"
    local start end
    start=$(date +%s.%N)
    rsync --recursive --links --hard-links --perms --owner --group -D --times \
        --numeric-ids --one-file-system --checksum --super --rsync-path="$2" \
        -e "ssh -F /dev/null -i $work/$1 -p $port -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$work/known_hosts" \
        "$account@127.0.0.1:$work/tree/" "$work/dest/"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

backup gated /usr/bin/rsync >/dev/null # warm the page cache
gated=() plain=()
for ((round = 1; round <= rounds; round++)); do
    # Alternate which goes first, so that neither always meets a warmer cache.
    if ((round % 2)); then
        gated+=("$(backup gated /usr/bin/rsync)")
        plain+=("$(backup plain "sudo -n /usr/bin/rsync")")
    else
        plain+=("$(backup plain "sudo -n /usr/bin/rsync")")
        gated+=("$(backup gated /usr/bin/rsync)")
    fi
    echo "round $round: rsyncsend ${gated[-1]} s, plain ssh ${plain[-1]} s"
done
g=$(printf '%s\n' "${gated[@]}" | median)
p=$(printf '%s\n' "${plain[@]}" | median)
printf 'allowed-paths %s\n' "$allowed"
printf 'full backup of %s MiB, median of %s: rsyncsend %.2f s, plain ssh %.2f s, ratio %.3f\n' \
    "$size_mib" "$rounds" "$g" "$p" "$(awk -v g="$g" -v p="$p" 'BEGIN { print g / p }')"
