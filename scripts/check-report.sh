#!/usr/bin/env bash
# Render an HTML report (memgen_plot::html::Page) in headless Chromium and check that it rendered.
# Usage: scripts/check-report.sh REPORT_HTML [OUT_PNG]
#
# Takes a 1200x3000 screenshot of REPORT_HTML (default OUT_PNG: REPORT_HTML with .html replaced by
# .screenshot.png) and prints the screenshot's path. The page is loaded from file:// with a 5 s virtual
# time budget; the whole run is killed after CHECK_REPORT_TIMEOUT seconds (default 60).
#
# "Rendered" is judged without decoding the PNG (no image library is assumed): the file must exist,
# start with the PNG signature and be larger than CHECK_REPORT_MIN_BYTES (default 20000). With
# Chromium 156 a blank white 1200x3000 screenshot is about 17 KB, a page with only a title and one
# line of text about 21 KB, and a report with a table, an image grid and a plot 90 KB or more; so the
# check catches a page that failed to render, not a thin one. Open the screenshot to judge the layout.
#
# Browser: $CHROMIUM if set, else the first of chromium, chromium-browser, google-chrome,
# google-chrome-stable on PATH. Exit status: 0 rendered, 1 check failed, 2 usage error or no browser.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
report="$1"
out="${2:-${report%.html}.screenshot.png}"
timeout_s="${CHECK_REPORT_TIMEOUT:-60}"
min_bytes="${CHECK_REPORT_MIN_BYTES:-20000}"

if [ ! -f "$report" ]; then
  echo "error: $report: no such file" >&2
  exit 2
fi

browser="${CHROMIUM:-}"
if [ -z "$browser" ]; then
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" > /dev/null 2>&1; then
      browser="$(command -v "$name")"
      break
    fi
  done
fi
if [ -z "$browser" ]; then
  echo "error: no Chromium found (looked for chromium, chromium-browser, google-chrome)." >&2
  echo "Install it, e.g. on Debian/Ubuntu: apt-get install chromium  (or set CHROMIUM=/path/to/chrome)" >&2
  exit 2
fi

# Absolute paths: Chromium needs a file:// URL, and resolves --screenshot against its own cwd.
abs() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd -P)" "$(basename "$1")"); }
report_abs="$(abs "$report")"
out_abs="$(abs "$out")"
if command -v python3 > /dev/null 2>&1; then
  url="$(python3 -c 'import pathlib, sys; print(pathlib.Path(sys.argv[1]).as_uri())' "$report_abs")"
else
  url="file://$report_abs"
fi

profile="$(mktemp -d "${TMPDIR:-/tmp}/check-report.XXXXXX")"
trap 'rm -rf "$profile"' EXIT
rm -f "$out_abs"

status=0
timeout --kill-after=10 "$timeout_s" "$browser" \
  --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
  --no-first-run --no-default-browser-check --user-data-dir="$profile" \
  --window-size=1200,3000 --virtual-time-budget=5000 \
  --screenshot="$out_abs" "$url" > "$profile/browser.log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "error: $browser timed out after ${timeout_s}s" >&2
  else
    echo "error: $browser exited with status $status" >&2
  fi
  grep -v 'dbus' "$profile/browser.log" | tail -n 20 >&2 || true
  exit 1
fi

if [ ! -s "$out_abs" ]; then
  echo "error: no screenshot written to $out_abs" >&2
  grep -v 'dbus' "$profile/browser.log" | tail -n 20 >&2 || true
  exit 1
fi
signature="$(head -c 8 "$out_abs" | od -An -tx1 | tr -d ' \n')"
if [ "$signature" != "89504e470d0a1a0a" ]; then
  echo "error: $out_abs is not a PNG file" >&2
  exit 1
fi
bytes="$(wc -c < "$out_abs" | tr -d ' ')"
if [ "$bytes" -le "$min_bytes" ]; then
  echo "error: $out_abs is only $bytes bytes (<= $min_bytes): the page looks blank" >&2
  exit 1
fi
echo "$out_abs"
