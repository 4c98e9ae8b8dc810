#!/usr/bin/env bash
# Rebuild offline.html, the HTML template of `dvc plots show` (.dvc/config: plots.html_template): DVC's page
# with vega, vega-lite and vega-embed inlined from the npm registry's packages, instead of <script> tags
# that load them from a CDN (a blank page offline). Run from anywhere; needs npm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
versions=(vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0)  # DVC's Vega-Lite v5 specs: vega 5, embed 6
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "${versions[@]}" >/dev/null
{
  echo '<!DOCTYPE html>'
  echo '<html>'
  echo '<head>'
  echo '    {refresh_tag}'
  echo '    <meta charset="utf-8">'
  echo '    <title>DVC Plot</title>'
  echo "    <!-- ${versions[*]} (BSD-3-Clause, University of Washington Interactive Data Lab), inlined by"
  echo '         .dvc/plots/build.sh so that the page renders without a network. -->'
  for spec in "${versions[@]}"; do
    name="${spec%@*}"
    mkdir "$name" && tar -xzf "${name}-${spec#*@}.tgz" -C "$name"
    echo '    <script type="text/javascript">'
    sed '/^\/\/# sourceMappingURL=/d' "$name/package/build/${name}.min.js"
    echo '    </script>'
  done
  echo '    <style>'
  echo '        table { border-spacing: 15px; }'
  echo '    </style>'
  echo '</head>'
  echo '<body>'
  echo '    {plot_divs}'
  echo '</body>'
  echo '</html>'
} >"$here/offline.html"
cp vega-lite/package/LICENSE "$here/LICENSE"  # the same BSD-3-Clause text covers vega and vega-embed
echo "wrote $here/offline.html ($(wc -c <"$here/offline.html") bytes)"
