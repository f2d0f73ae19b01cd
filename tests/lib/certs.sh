# Test PKI for integration tests, made with the openssl CLI (sourced).
#
#   make_test_ca DIR
#
# creates in DIR (all EC P-256, valid 2 days, keys mode 0600):
#   ca.crt ca.key              the test CA every good certificate chains to
#   server.crt server.key      CN=localhost, SAN DNS:localhost, IP:127.0.0.1,
#                              IP:::1; serverAuth (the relay's certificate)
#   client.crt client.key      CN=mcptun-test-client; clientAuth (mTLS)
#   other-ca.crt other-ca.key  an unrelated CA, for "unknown issuer" tests
#   other-client.crt/.key      a client certificate issued by other-ca
#   wrong-host.crt/.key        issued by the test CA for wrong.example only,
#                              for host-name mismatch tests
# and sets CERTS=DIR.  Takes well under a second.

# _cert_key FILE: a new P-256 private key in FILE, mode 0600.
_cert_key() {
	(umask 077 && openssl genpkey -algorithm EC \
	    -pkeyopt ec_paramgen_curve:P-256 -out "$1") 2>/dev/null
}

# _cert_issue DIR NAME SUBJECT ISSUER EXTENSIONS: NAME.key and NAME.crt,
# signed by ISSUER.crt/ISSUER.key, with the given v3 extension lines.
_cert_issue() {
	_ci_d=$1 _ci_n=$2
	_cert_key "$_ci_d/$_ci_n.key" || return 1
	printf '%s\n' "$5" >"$_ci_d/$_ci_n.ext"
	openssl req -new -key "$_ci_d/$_ci_n.key" -subj "$3" \
	    -out "$_ci_d/$_ci_n.csr" 2>/dev/null &&
	openssl x509 -req -in "$_ci_d/$_ci_n.csr" -days 2 -sha256 \
	    -CA "$_ci_d/$4.crt" -CAkey "$_ci_d/$4.key" -set_serial "0x$(openssl rand -hex 8)" \
	    -extfile "$_ci_d/$_ci_n.ext" -out "$_ci_d/$_ci_n.crt" 2>/dev/null
	_ci_rc=$?
	rm -f "$_ci_d/$_ci_n.csr" "$_ci_d/$_ci_n.ext"
	return $_ci_rc
}

# _cert_ca DIR NAME CN: a self-signed CA certificate NAME.crt/NAME.key.
_cert_ca() {
	_cert_key "$1/$2.key" || return 1
	openssl req -x509 -new -key "$1/$2.key" -subj "/O=mcptun tests/CN=$3" \
	    -days 2 -sha256 -set_serial "0x$(openssl rand -hex 8)" \
	    -addext "basicConstraints=critical,CA:TRUE" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" \
	    -addext "subjectKeyIdentifier=hash" \
	    -out "$1/$2.crt" 2>/dev/null
}

make_test_ca() {
	_mc_d=${1:?make_test_ca: DIR}
	mkdir -p "$_mc_d" || return 1
	_leaf='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'
	_cert_ca "$_mc_d" ca "mcptun test CA" &&
	_cert_ca "$_mc_d" other-ca "unrelated test CA" &&
	_cert_issue "$_mc_d" server "/O=mcptun tests/CN=localhost" ca "$_leaf
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" &&
	_cert_issue "$_mc_d" client "/O=mcptun tests/CN=mcptun-test-client" ca "$_leaf
extendedKeyUsage=clientAuth" &&
	_cert_issue "$_mc_d" other-client "/O=mcptun tests/CN=mcptun-test-client" other-ca "$_leaf
extendedKeyUsage=clientAuth" &&
	_cert_issue "$_mc_d" wrong-host "/O=mcptun tests/CN=wrong.example" ca "$_leaf
extendedKeyUsage=serverAuth
subjectAltName=DNS:wrong.example" || {
		echo "make_test_ca: openssl failed in $_mc_d" >&2
		return 1
	}
	chmod 600 "$_mc_d"/*.key
	CERTS=$_mc_d
}
