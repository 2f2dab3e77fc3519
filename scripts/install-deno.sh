#!/usr/bin/env bash
# Prints the path of a Deno binary of the pinned version, installing it first when
# needed. The pin lives here only; the Makefile asks this script for the binary.
#
# Deno comes from the npm package `deno`, which ships the binary inside the
# registry package (no download at install time), so a machine with only Node and
# npm can build and test the project. The install goes to .deno/ (git-ignored).
set -euo pipefail

version="2.9.6"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.deno"
bin="$dest/node_modules/deno/deno"

version_of() { "$1" --version 2>/dev/null | awk 'NR==1 {print $2}'; }

if command -v deno >/dev/null 2>&1 && [ "$(version_of "$(command -v deno)")" = "$version" ]; then
  command -v deno
  exit 0
fi

if [ ! -x "$bin" ] || [ "$(version_of "$bin")" != "$version" ]; then
  command -v npm >/dev/null 2>&1 || {
    echo "install-deno: npm is needed to install Deno $version (npm package 'deno')" >&2
    exit 1
  }
  mkdir -p "$dest"
  (
    # Parallel make targets may race to install; one installs, the others wait.
    flock 9
    if [ ! -x "$bin" ] || [ "$(version_of "$bin")" != "$version" ]; then
      echo "install-deno: installing Deno $version from npm into .deno/" >&2
      printf '{"private":true}\n' >"$dest/package.json"
      npm install --prefix "$dest" --no-audit --no-fund --no-save --loglevel=error "deno@$version" >&2
    fi
  ) 9>"$dest/.lock"
fi

[ "$(version_of "$bin")" = "$version" ] || {
  echo "install-deno: $bin is not Deno $version after install" >&2
  exit 1
}
echo "$bin"
