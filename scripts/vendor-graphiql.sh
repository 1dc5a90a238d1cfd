#!/usr/bin/env bash
# Vendors GraphiQL and React into crates/api/assets/graphiql/, which the
# binary embeds and serves at / (crates/api/src/http/graphiql.rs), so the
# page works with no network and under a CSP that allows no other origin.
#
# To update: change a version below, run this script, run the browser test
# (cargo test -p api --test api browser), look at the page, commit.
#
# Needs node and npm; fetches from the npm registry.
set -euo pipefail

# 3.x is the last GraphiQL line that ships a UMD bundle running without a
# bundler (4.x and 5.x are ESM only and load their editor workers as modules).
GRAPHIQL=3.9.0
# GraphiQL 3 takes React 16.8 to 18; React 19 ships no UMD builds.
REACT=18.3.1

cd "$(dirname "$0")/.."
script_dir=$PWD/scripts
dest=$PWD/crates/api/assets/graphiql
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

npm pack --silent graphiql@$GRAPHIQL react@$REACT react-dom@$REACT >/dev/null
for package in graphiql-$GRAPHIQL react-$REACT react-dom-$REACT; do
  mkdir "$package"
  tar xzf "$package.tgz" -C "$package"
done

rm -rf "$dest"
mkdir -p "$dest"
cp graphiql-$GRAPHIQL/package/graphiql.min.js graphiql-$GRAPHIQL/package/graphiql.min.css "$dest/"
cp react-$REACT/package/umd/react.production.min.js "$dest/"
cp react-dom-$REACT/package/umd/react-dom.production.min.js "$dest/"

# graphiql.min.js bundles some sixty packages besides GraphiQL's own; its
# source map names them. Install GraphiQL as a project would, add the
# bundled packages that install leaves out (build-time and optional peer
# dependencies: their latest version, as the bundle does not record which
# it took), then write each bundled package's licence next to the bundle.
map=graphiql-$GRAPHIQL/package/graphiql.min.js.map
node "$script_dir/vendor-graphiql-licenses.mjs" names "$map" >names
npm install --silent --no-audit --no-fund --ignore-scripts \
  graphiql@$GRAPHIQL react@$REACT react-dom@$REACT graphql@16 >/dev/null
missing=$(node "$script_dir/vendor-graphiql-licenses.mjs" missing names)
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086 # one package name per word
  npm install --silent --no-audit --no-fund --ignore-scripts --no-save $missing >/dev/null
fi
node "$script_dir/vendor-graphiql-licenses.mjs" write names "$missing" >"$dest/THIRD-PARTY-LICENSES.txt"

cd "$dest"
{
  echo "# Vendored GraphiQL"
  echo
  echo "Written by \`scripts/vendor-graphiql.sh\`; do not edit. The files are"
  echo "byte-for-byte those of the npm packages below; the binary embeds them and"
  echo "serves them under /assets/, named by content hash."
  echo
  echo "| file | from | sha256 |"
  echo "|---|---|---|"
  for file in graphiql.min.js graphiql.min.css; do
    echo "| $file | graphiql@$GRAPHIQL | $(sha256sum "$file" | cut -c1-64) |"
  done
  echo "| react.production.min.js | react@$REACT (umd/) | $(sha256sum react.production.min.js | cut -c1-64) |"
  echo "| react-dom.production.min.js | react-dom@$REACT (umd/) | $(sha256sum react-dom.production.min.js | cut -c1-64) |"
  echo
  echo "GraphiQL and React are MIT-licensed; THIRD-PARTY-LICENSES.txt holds the"
  echo "licence of every package the files bundle."
} >README.md
du -ch ./*.js ./*.css | tail -1
