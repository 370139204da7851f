#!/usr/bin/env bash
# Per-notification cost of the crate and of the Node.js and Python webhooks users would
# otherwise write, on the same batch in the same run, with OpenSSL's raw RSA private-key
# operation as the floor. Prints a Markdown table.
#
# usage: benches/compare.sh [PEERS_DIR [SECONDS]]
#   PEERS_DIR (default benches/peers) holds node_decrypt.js and py_decrypt.py (each: KEY.pem BATCH.json SECONDS ->
#   "<name> <us per notification>"); needs node, python3 with `cryptography`, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
peers=${1:-benches/peers}
secs=${2:-5}
cores=$(nproc)
# The default build: what users get (the AWS-LC provider); rust-crypto is measured for information.
cargo build --quiet --release --example throughput
tp=target/release/examples/throughput

us() { awk '{print $NF}' | sed 's/.*=//'; }
echo "| RSA | Node (crypto) | Python (cryptography) | default (aws-lc) 1 thread | default $cores threads | OpenSSL RSA op (floor) | rust-crypto 1 thread | rust-crypto $cores threads |"
echo "|---|---|---|---|---|---|---|---|"
for bits in 2048 4096; do
  key=tests/fixtures/keys/rsa$bits/key.pkcs8.pem
  batch=tests/fixtures/batches/rsa$bits.json
  id=graphsim-rsa$bits
  node=$(node "$peers/node_decrypt.js" "$key" "$batch" "$secs" | us)
  py=$(python3 "$peers/py_decrypt.py" "$key" "$batch" "$secs" | us)
  rc1=$("$tp" --provider rust-crypto --key "$id=$key" --seconds "$secs" "$batch" | us)
  aw1=$("$tp" --key "$id=$key" --seconds "$secs" "$batch" | us)
  rcn=$("$tp" --provider rust-crypto --threads 0 --key "$id=$key" --seconds "$secs" "$batch" | us)
  awn=$("$tp" --threads 0 --key "$id=$key" --seconds "$secs" "$batch" | us)
  # `openssl speed rsaN`: the `sign` column is the time of one private-key operation.
  floor=$(openssl speed -seconds "$secs" "rsa$bits" 2>/dev/null | awk -v b="$bits" '$1=="rsa" && $2==b && $3=="bits" {print $4}' | sed 's/s$//')
  floor_us=$(awk -v s="$floor" 'BEGIN { printf "%.1f", s * 1e6 }')
  echo "| $bits | $node | $py | $aw1 | $awn | $floor_us | $rc1 | $rcn |"
done
