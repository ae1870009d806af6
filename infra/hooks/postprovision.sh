#!/bin/sh
# azd postprovision hook: creates the keys the app generates for itself in Key Vault, each only when
# absent, so a second `azd up` never rotates one (rotation is a deliberate step: docs/deploy.md).
# Values go from a private temporary file to the vault; none is printed or put on a command line.
# Needs the Azure CLI signed in as the deploying user (Key Vault Secrets Officer on the vault).
set -eu

vault="${AZURE_KEY_VAULT_NAME:?AZURE_KEY_VAULT_NAME is missing: run this through azd after provisioning}"
callbacks="${SAAS_CALLBACKS_ENABLED:-false}"

umask 077
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT INT TERM

# A fresh role assignment can take minutes to reach the vault: retry the listing, never guess.
names=""
attempt=1
while :; do
  if names="$(az keyvault secret list --vault-name "$vault" --query "[].name" --output tsv)"; then
    break
  fi
  if [ "$attempt" -ge "${POSTPROVISION_ATTEMPTS:-6}" ]; then
    echo "postprovision: cannot list the secrets of $vault; nothing was written" >&2
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep "${POSTPROVISION_RETRY_SECONDS:-20}"
done

exists() {
  printf '%s\n' "$names" | grep -qx "$1"
}

random_key() {  # 32 random bytes, base64
  python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode(), end="")'
}

ensure() {  # ensure NAME PREFIX: create NAME as PREFIX + a random key unless it exists
  if exists "$1"; then
    echo "postprovision: $1 exists; left as it is"
    return
  fi
  { printf '%s' "$2"; random_key; } > "$tmp"
  az keyvault secret set --vault-name "$vault" --name "$1" --file "$tmp" --encoding utf-8 --output none
  : > "$tmp"
  echo "postprovision: $1 created"
}

ensure client-state-keys "k1:"
ensure connect-signing-key ""
if [ "$callbacks" = "true" ]; then
  ensure saas-callback-secret ""
fi

if [ -z "${CLIENT_CERTIFICATE_NAME:-}" ] && ! exists client-secret; then
  echo "postprovision: client-secret is not in $vault yet; put the app registration's client secret there" \
       "(docs/deploy.md, step 3). Until then GET /api/health/details names CLIENT_SECRET."
fi
