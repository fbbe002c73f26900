#!/usr/bin/env bash
# Print the path of a helm v3 binary, building it once from the Go module proxy if needed.
#
# Order: $HELM (if set and executable) -> cached build in $SYNTHSCAN_HELM_BIN_DIR
# (default $HOME/.cache/synthscan/bin) -> `go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION`.
# `helm` on PATH is NOT used implicitly, so CI always tests against the pinned version;
# point $HELM at it to use it. The build takes a few minutes on 2 cores and is cached,
# so CI should cache $HOME/.cache/synthscan/bin (and the Go module cache) between runs.
# Everything but the final path goes to stderr.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
BIN_DIR="${SYNTHSCAN_HELM_BIN_DIR:-$HOME/.cache/synthscan/bin}"

if [[ -n "${HELM:-}" ]]; then
    if [[ -x "$HELM" ]]; then
        echo "$HELM"
        exit 0
    fi
    echo "ensure-helm: \$HELM=$HELM is not an executable file" >&2
    exit 1
fi

target="$BIN_DIR/helm-$HELM_VERSION"
if [[ -x "$target" ]]; then
    echo "$target"
    exit 0
fi

# $GO (if set) -> `go` on PATH -> /usr/local/go/bin/go.
GO="${GO:-$(command -v go 2>/dev/null || echo /usr/local/go/bin/go)}"
if [[ ! -x "$GO" ]]; then
    cat >&2 <<MSG
ensure-helm: no helm $HELM_VERSION in $BIN_DIR and no Go toolchain to build it (tried: $GO).
Get helm one of these ways:
  - install Go >= 1.26 (https://go.dev/dl/), put it on PATH or set GO=/path/to/go, and re-run
    scripts/tools/ensure-helm.sh: it builds helm from the Go module proxy into $BIN_DIR;
  - or download a helm v3 release (https://github.com/helm/helm/releases) and
    export HELM=/path/to/helm
MSG
    exit 1
fi

mkdir -p "$BIN_DIR"
tmp="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "ensure-helm: building helm $HELM_VERSION with $("$GO" version) (a few minutes, once)..." >&2
start=$SECONDS

# Like helm's Makefile: stamp the version and the Kubernetes version that `helm template` and
# `helm lint` assume (derived from the client-go version in helm's go.mod; 0.N -> 1.N), else
# they default to Kubernetes 1.20 and charts with a kubeVersion constraint fail to render.
gomod="$(cd "$tmp" && "$GO" mod download -json "helm.sh/helm/v3@$HELM_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
k8s_minor="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod" | head -n1)"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
if [[ -n "$k8s_minor" ]]; then
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
        ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
    done
else
    echo "ensure-helm: could not read the client-go version from $gomod; helm assumes Kubernetes 1.20" >&2
fi
(cd "$tmp" && GOBIN="$tmp" GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0 \
    "$GO" install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2
mv -f "$tmp/helm" "$target"   # atomic within the same directory: concurrent runs are safe
ln -sfn "helm-$HELM_VERSION" "$BIN_DIR/helm"
echo "ensure-helm: built $target in $((SECONDS - start)) s" >&2
echo "$target"
