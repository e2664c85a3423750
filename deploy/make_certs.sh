#!/usr/bin/env bash
# Makes a private CA and the certificates weftd and its clients present, with
# openssl, for a test setup or the compose file (never for production: there,
# certificates come from your own CA).
#
#   deploy/make_certs.sh DIR [CLIENT...]
#
# DIR/ca.pem, ca.key       the CA (clients trust ca.pem: --tls_ca, -cacert;
#                          weftd checks client certificates against it:
#                          --tls_client_ca)
# DIR/server.pem, .key     weftd's (--tls_cert, --tls_key), CN=weftd, valid for
#                          the names in $WEFT_CERT_SERVER_NAMES (default
#                          DNS:weftd,DNS:localhost,IP:127.0.0.1)
# DIR/CLIENT.pem, .key     a client certificate for each CLIENT, CN=CLIENT (its
#                          subject, CN=CLIENT, may name a principal:
#                          certificateSubject in --auth_tokens)
#
# P-256 keys, valid for $WEFT_CERT_DAYS days (default 30). A DIR whose
# certificates are all there and valid for another day is left as it is, so
# running it again (each `docker-compose up`) keeps them. With $WEFT_CERT_OWNER
# (uid:gid) the files are given to that user, keys readable by it alone.
set -euo pipefail

if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: $0 DIR [CLIENT...]" >&2
  exit 2
fi
dir=$1
shift
names=${WEFT_CERT_SERVER_NAMES:-DNS:weftd,DNS:localhost,IP:127.0.0.1}
days=${WEFT_CERT_DAYS:-30}

valid() {  # Every file there, and each certificate valid for another day.
  local f
  for f in ca server "$@"; do
    [ -s "$dir/$f.pem" ] && [ -s "$dir/$f.key" ] || return 1
    openssl x509 -checkend 86400 -noout -in "$dir/$f.pem" >/dev/null 2>&1 || return 1
  done
}

if valid "$@"; then
  echo "make_certs: the certificates in $dir are valid; kept"
  exit 0
fi

mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# $1: the file name; $2: the subject; $3: the extensions.
issue() {
  key "$work/$1.key"
  openssl req -new -key "$work/$1.key" -subj "$2" -out "$work/$1.csr"
  printf '%s\n' "$3" >"$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days "$days" -extfile "$work/$1.ext" -out "$work/$1.pem" 2>/dev/null
}

key "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -subj "/CN=weft test CA" -days "$days" \
  -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign" \
  -out "$work/ca.pem"
issue server "/CN=weftd" "subjectAltName=$names
extendedKeyUsage=serverAuth"
for client in "$@"; do
  issue "$client" "/CN=$client" "extendedKeyUsage=clientAuth"
done

for f in ca server "$@"; do
  install -m 0644 "$work/$f.pem" "$dir/$f.pem"
  install -m 0600 "$work/$f.key" "$dir/$f.key"
  if [ -n "${WEFT_CERT_OWNER:-}" ]; then
    chown "$WEFT_CERT_OWNER" "$dir/$f.pem" "$dir/$f.key"
  fi
done
echo "make_certs: made ca, server${*:+ and $*} in $dir"
