# Shared by the benchmarks: sourced, not run.

# test_ca DIR [SAN]: a CA (DIR/ca.crt) and a server certificate signed by
# it (DIR/server.crt, DIR/server.key) for SAN (default IP:127.0.0.1),
# P-256, valid for two days.
test_ca() {
    (
        cd "$1"
        printf '[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n' >ca.cnf
        printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "${2:-IP:127.0.0.1}" >server.ext
        ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 -new "${ec[@]}" -keyout ca.key -out ca.crt -days 2 -subj /CN=bench-CA -extensions ca -config ca.cnf 2>/dev/null
        openssl req -new "${ec[@]}" -keyout server.key -out server.csr -subj /CN=bench-server -config ca.cnf 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt 2>/dev/null
    )
}

# wait_for_line FILE TEXT: until FILE holds TEXT, 10 s at most.
wait_for_line() {
    local i
    for ((i = 0; i < 200; i++)); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    cat "$1" >&2
    return 1
}
