#!/usr/bin/env bash
# A real buildkitd gets every step CACHED from a zstd copy of its own gzip
# cache (issue 14). Opt-in, not run by .ci/run: it builds BuildKit v0.34.2,
# runs buildkitd as root and takes a few minutes.
#
#   sudo bash scripts/buildkit-zstd.sh [WORKDIR]
#
# 1. builds buildkitd and buildctl v0.34.2 in a copy of the module (go
#    install refuses BuildKit's exclude directives), unless BUILDKIT_BIN
#    names a directory that has both;
# 2. starts buildkitd (OCI worker, runc, native snapshotter) on a socket in
#    WORKDIR;
# 3. builds a multi-stage Dockerfile (a static busybox in scratch, RUN and
#    COPY --from steps: testdata/buildkit-local-cache's) and exports its
#    cache, gzip layers, with --export-cache type=local,mode=max;
# 4. copies that cache with every layer converted to zstd
#    (go run ./examples/convert, the library's WithCompression; the same as
#    `remotecache copy --compression zstd`) and checks every layer is zstd
#    and has the diffID of the gzip layer it came from;
# 5. runs `buildctl prune --all`, builds again importing only the zstd cache,
#    with --output type=tar so that the layers are read, and checks that
#    every step of the Dockerfile is CACHED and the output has the first
#    build's files.
#
# It needs runc and busybox-static (Debian: apt-get install -y runc
# busybox-static), Go, python3, and root. WORKDIR (default: a new temporary
# directory) is removed at the end unless KEEP=1.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$(mktemp -d /tmp/buildkit-zstd.XXXXXX)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
log() { echo "buildkit-zstd: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

for tool in runc go python3; do
	command -v "$tool" >/dev/null || fail "$tool not found (apt-get install -y runc busybox-static)"
done
busybox="$(command -v busybox || true)"
[[ -n "$busybox" ]] && file -L "$busybox" 2>/dev/null | grep -q 'statically linked' || busybox=/bin/busybox
[[ -x "$busybox" ]] || fail "no static busybox (apt-get install -y busybox-static)"
[[ "$(id -u)" == 0 ]] || fail "buildkitd needs root"

bin="${BUILDKIT_BIN:-$work/bin}"
if [[ ! -x "$bin/buildkitd" || ! -x "$bin/buildctl" ]]; then
	log "building buildkitd and buildctl v0.34.2 into $bin"
	moddir="$(go mod download -json github.com/moby/buildkit@v0.34.2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
	rm -rf "$work/buildkit-src"
	cp -r "$moddir" "$work/buildkit-src"
	chmod -R u+w "$work/buildkit-src"
	(cd "$work/buildkit-src" && CGO_ENABLED=0 go build -mod=mod -o "$bin/" ./cmd/buildkitd ./cmd/buildctl)
fi

sock="unix://$work/buildkitd.sock"
bkpid=""
cleanup() {
	if [[ -n "$bkpid" ]]; then
		kill "$bkpid" 2>/dev/null || true
		wait "$bkpid" 2>/dev/null || true
	fi
	if [[ "${KEEP:-}" != 1 ]]; then
		rm -rf "$work"
	else
		log "kept $work"
	fi
}
trap cleanup EXIT

log "starting buildkitd"
"$bin/buildkitd" --root "$work/root" --addr "$sock" --oci-worker=true \
	--containerd-worker=false --oci-worker-snapshotter=native >"$work/buildkitd.log" 2>&1 &
bkpid=$!
bctl() { "$bin/buildctl" --addr "$sock" "$@"; }
for _ in $(seq 100); do
	bctl debug workers >/dev/null 2>&1 && break
	kill -0 "$bkpid" 2>/dev/null || { cat "$work/buildkitd.log" >&2; fail "buildkitd exited"; }
	sleep 0.2
done
bctl debug workers >/dev/null || fail "buildkitd did not answer"

ctx="$work/context"
mkdir -p "$ctx"
cp "$busybox" "$ctx/busybox"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch AS base
COPY busybox /bin/busybox
COPY busybox /bin/sh
RUN ["/bin/busybox", "mkdir", "-p", "/work"]
RUN echo one > /work/one && /bin/busybox sha256sum /bin/busybox > /work/sum

FROM base AS builder
COPY Dockerfile /src/Dockerfile
RUN /bin/busybox wc -c /src/Dockerfile > /work/size && echo built > /work/built

FROM base
COPY --from=builder /work/size /size
RUN echo final > /final
DOCKERFILE
build() {
	bctl build --frontend dockerfile.v0 --local context="$ctx" --local dockerfile="$ctx" --progress plain "$@"
}

log "build 1: exporting a gzip cache"
build --export-cache "type=local,dest=$work/gzip,mode=max" --output "type=tar,dest=$work/out1.tar" >"$work/build1.log" 2>&1 ||
	{ cat "$work/build1.log" >&2; fail "build 1"; }

log "converting the cache to zstd"
(cd "$repo" && go run ./examples/convert -compression zstd "$work/gzip" "$work/zstd:latest") >&2

# Every layer of the copy is zstd, with the diffID of a gzip layer.
python3 - "$work/gzip" "$work/zstd" <<'PY' || fail "the zstd copy's layers"
import json, sys
def layers(d):
    idx = json.load(open(d + "/index.json"))
    m = idx["manifests"][0]["digest"].split(":")[1]
    return json.load(open(d + "/blobs/sha256/" + m))["layers"]
src, dst = layers(sys.argv[1]), layers(sys.argv[2])
diff = lambda l: l["annotations"]["containerd.io/uncompressed"]
assert sorted(map(diff, src)) == sorted(map(diff, dst)), "diffIDs differ"
assert all(l["mediaType"].endswith("+gzip") for l in src), "source not gzip"
bad = [l["digest"] for l in dst if l["mediaType"] != "application/vnd.oci.image.layer.v1.tar+zstd"]
assert not bad, "not zstd: %s" % bad
print("buildkit-zstd: %d gzip layers -> %d zstd layers, same diffIDs" % (len(src), len(dst)), file=sys.stderr)
PY

log "pruning buildkitd's local cache"
bctl prune --all >/dev/null

log "build 2: importing only the zstd cache"
build --import-cache "type=local,src=$work/zstd" --output "type=tar,dest=$work/out2.tar" >"$work/build2.log" 2>&1 ||
	{ cat "$work/build2.log" >&2; fail "build 2"; }

# The Dockerfile's steps are the vertices named [stage n/m]; each must be
# CACHED (a failed cache import does not fail the build: count).
steps=$(grep -cE '^#[0-9]+ \[(base|builder|stage-[0-9]+) +[0-9]+/[0-9]+\]' "$work/build2.log" || true)
cached=0
while read -r n; do
	if grep -qE "^#$n CACHED\$" "$work/build2.log"; then
		cached=$((cached + 1))
	else
		log "not cached: $(grep -m1 -E "^#$n " "$work/build2.log")"
	fi
done < <(grep -oE '^#[0-9]+ \[(base|builder|stage-[0-9]+) +[0-9]+/[0-9]+\]' "$work/build2.log" | sed -E 's/^#([0-9]+) .*/\1/' | sort -un)
if grep -qi 'error.*cache\|failed to import' "$work/build2.log"; then
	grep -i 'error.*cache\|failed to import' "$work/build2.log" >&2
	fail "buildkitd reported a cache import error"
fi
log "$cached of $steps steps CACHED"
[[ "$steps" -gt 0 && "$cached" -eq "$steps" ]] || { cat "$work/build2.log" >&2; fail "not every step CACHED"; }
# The output has the first build's files (names, modes, contents; the tar
# exporter stamps times of its own).
python3 - "$work/out1.tar" "$work/out2.tar" <<'PY' || fail "build 2's output differs from build 1's"
import hashlib, sys, tarfile
def files(p):
    with tarfile.open(p) as t:
        return {m.name: (m.mode, m.type, m.linkname, hashlib.sha256(t.extractfile(m).read()).hexdigest() if m.isfile() else "") for m in t}
a, b = files(sys.argv[1]), files(sys.argv[2])
assert a == b, "differs: %s" % sorted(set(a.items()) ^ set(b.items()))
PY
log "PASS: every step CACHED from the zstd copy; the output has the same files"
