// Helper of vendor-graphiql.sh: which packages graphiql.min.js bundles,
// which of them an install left out, and their licences.
//   names <source map>            one bundled package name per line
//   missing <names file>          the names not under node_modules, space-separated
//   write <names file> <missing>  the licence text of every name, to stdout
import fs from 'node:fs';
import path from 'node:path';

// Sources from GraphiQL's own monorepo are named by directory, not package.
const MONOREPO = {
  'graphiql-react': '@graphiql/react',
  'graphiql-toolkit': '@graphiql/toolkit',
  'codemirror-graphql': 'codemirror-graphql',
  'graphql-language-service': 'graphql-language-service',
  src: 'graphiql',
};

const [command, input, missingArg = ''] = process.argv.slice(2);

function bundledNames(map) {
  const names = new Set(['react', 'react-dom']);
  for (const source of JSON.parse(fs.readFileSync(map, 'utf8')).sources) {
    const dependency = source.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
    const own = source.match(/^(?:\.\.\/)+([^/]+)\//);
    const name = dependency ? dependency[1] : own && MONOREPO[own[1]];
    if (!name) throw new Error(`cannot tell which package ${source} belongs to`);
    names.add(name);
  }
  return [...names].sort();
}

// Hoisted first, then nested copies (npm nests a package when versions clash).
function installed(name, dir = 'node_modules') {
  if (fs.existsSync(path.join(dir, name, 'package.json'))) return path.join(dir, name);
  for (const entry of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const parents = entry.startsWith('@') ? fs.readdirSync(path.join(dir, entry)).map((s) => path.join(dir, entry, s))
      : [path.join(dir, entry)];
    for (const parent of parents) {
      const nested = path.join(parent, 'node_modules');
      const found = fs.existsSync(nested) && installed(name, nested);
      if (found) return found;
    }
  }
  return null;
}

const names = () => fs.readFileSync(input, 'utf8').split('\n').filter(Boolean);

if (command === 'names') {
  console.log(bundledNames(input).join('\n'));
} else if (command === 'missing') {
  console.log(names().filter((name) => !installed(name)).join(' '));
} else if (command === 'write') {
  const latest = new Set(missingArg.split(' ').filter(Boolean));
  const rule = '='.repeat(78);
  let text = 'Licences of the packages in graphiql.min.js, react.production.min.js and\n' +
    'react-dom.production.min.js, collected by scripts/vendor-graphiql.sh.\n';
  for (const name of names()) {
    const dir = installed(name);
    if (!dir) throw new Error(`${name} is bundled but not installed`);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const note = latest.has(name) ? ', licence of the latest release: the bundle does not record its version' : '';
    const file = fs.readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    text += `\n${rule}\n${name}@${meta.version} (${meta.license}${note})\n${rule}\n\n`;
    text += file ? fs.readFileSync(path.join(dir, file), 'utf8').trim() + '\n'
      : `The package has no licence file; its package.json says ${meta.license}.\n`;
  }
  process.stdout.write(text);
} else {
  throw new Error(`unknown command ${command}`);
}
