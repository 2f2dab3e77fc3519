#!/bin/sh
# The image's entrypoint: runs <prefix>/setup.sh once, if it is there (as the
# original's image does: install what the scripts need), then becomes the
# daemon. The prefix comes by volume: config.json and scripts/.
set -eu
prefix="${WSDAEMON_PREFIX:-/usr/src/app}"
marker="$prefix/.setup-done"
if [ -f "$prefix/setup.sh" ] && [ ! -e "$marker" ]; then
  echo "entrypoint: running $prefix/setup.sh once" >&2
  sh "$prefix/setup.sh"
  : >"$marker" 2>/dev/null || echo "entrypoint: cannot write $marker; setup.sh runs again next start" >&2
fi
exec "${WSDAEMON_BIN:-/usr/local/bin/ws-daemon}" "$@"
