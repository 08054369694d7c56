#!/usr/bin/env bash
# Writes development-only secrets for deploy/compose.yaml into deploy/secrets/ and deploy/.env
# (both git-ignored): a Postgres password, a JWT HS256 secret, an ES256 key pair, and a private CA
# with one certificate per service (server and client use: every gRPC port is mutual TLS). Idempotent: existing
# files are kept; delete deploy/secrets/ to start over. Needs openssl. Never use these in production.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets/jwt secrets/tls
[[ -f secrets/postgres-password ]] || openssl rand -hex 24 | tr -d '\n' > secrets/postgres-password
[[ -f secrets/jwt/hs256.secret ]] || openssl rand -base64 48 | tr -d '\n' > secrets/jwt/hs256.secret
if [[ ! -f secrets/jwt/es256.key.pem ]]; then
    openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out secrets/jwt/es256.key.pem
    openssl ec -in secrets/jwt/es256.key.pem -pubout -out secrets/jwt/es256.pub.pem 2>/dev/null
fi
if [[ ! -f secrets/tls/ca.crt ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
        -subj "/CN=tfesi-dev-ca" -keyout secrets/tls/ca.key -out secrets/tls/ca.crt 2>/dev/null
fi
if [[ ! -f secrets/desk-accounts ]]; then
    printf '# Nurse desk accounts, one per line: add lines printed by\n#   tfesi-desk hash-password --username NAME --display-name "Full Name"\n' > secrets/desk-accounts
fi
for service in ingest preprocess inference registry desk; do
    [[ -f "secrets/tls/${service}.crt" ]] && continue
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=${service}" \
        -keyout "secrets/tls/${service}.key" -out "secrets/tls/${service}.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' "${service}" \
        > "secrets/tls/${service}.ext"
    openssl x509 -req -in "secrets/tls/${service}.csr" -CA secrets/tls/ca.crt -CAkey secrets/tls/ca.key \
        -CAcreateserial -days 90 -extfile "secrets/tls/${service}.ext" -out "secrets/tls/${service}.crt" 2>/dev/null
    rm -f "secrets/tls/${service}.csr" "secrets/tls/${service}.ext"
done
# Containers run as uid 10001: compose mounts file secrets with the file's own mode, so the
# development keys are world-readable here (never do this with production keys).
chmod 0644 secrets/postgres-password secrets/jwt/* secrets/tls/*.crt secrets/tls/*.key secrets/desk-accounts
printf 'TFESI_POSTGRES_PASSWORD=%s\n' "$(cat secrets/postgres-password)" > .env
echo "dev-secrets: wrote deploy/secrets/ and deploy/.env (development only)"
