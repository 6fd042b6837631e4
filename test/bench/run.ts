// `npm run bench`: runs every test/bench/*.bench.ts, prints one table and writes .bulwark/bench.json.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BenchResult, type BenchSuite, renderTable, toResult } from './harness.js';

// Node 20 is the local toolchain (see README); the SDK's notice about its 2027 releases is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const outputDir = join(benchDir, '..', '..', '.bulwark');
const only = process.argv.slice(2);

const files = readdirSync(benchDir)
  .filter((file) => file.endsWith('.bench.ts'))
  .filter((file) => only.length === 0 || only.some((name) => file.includes(name)))
  .sort();

const results: BenchResult[] = [];
for (const file of files) {
  const suite = (await import(pathToFileURL(join(benchDir, file)).href)).default as BenchSuite;
  console.error(`running ${suite.name} (${file})…`);
  for (const measurement of await suite.run()) results.push(toResult(measurement));
}

console.log(renderTable(results));
mkdirSync(outputDir, { recursive: true });
const output = join(outputDir, 'bench.json');
writeFileSync(
  output,
  `${JSON.stringify({ node: process.version, cpus: (await import('node:os')).cpus().length, results }, null, 2)}\n`,
);
console.error(`wrote ${output}`);
// Keep-alive sockets and the embedded servers' handles must not hold the process open.
process.exit(0);
