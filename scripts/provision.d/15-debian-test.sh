#!/usr/bin/env bash
# for: test
# Debian packages only the tests and benchmarks use: Chromium (the report test renders the
# page), Debian's SentencePiece commands (bench/data-prepare.ts compares against spm_encode)
# and zstd (test/data/compressed.test.ts makes .zst files).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
step "debian packages (tests)"
apt_install chromium sentencepiece zstd
