// `npm run bench`: runs every test/bench/*.bench.ts, prints one table and writes .bulwark/bench.json.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BenchResult, type BenchSuite, type Measurement, renderTable, toResult } from './harness.js';

// Node 20 is the local toolchain (see README); the SDK's notice about its 2027 releases is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const outputDir = join(benchDir, '..', '..', '.bulwark');

/** In a child: runs one suite and writes its measurements to `output`. */
async function runSuite(file: string, output: string): Promise<void> {
  const suite = (await import(pathToFileURL(join(benchDir, file)).href)).default as BenchSuite;
  console.error(`running ${suite.name} (${file})…`);
  writeFileSync(output, JSON.stringify(await suite.run()));
}

/**
 * Each suite runs in a process of its own: suites that start the local runtime import the functions,
 * whose module-level clients would otherwise still point at the previous suite's stopped servers.
 */
function runInChild(file: string, output: string): Promise<Measurement[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, fileURLToPath(import.meta.url), '--suite', file, output],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`bench suite ${file} failed (exit ${code})`));
      else resolve(JSON.parse(readFileSync(output, 'utf8')) as Measurement[]);
    });
  });
}

const [flag, suiteFile, suiteOutput] = process.argv.slice(2);
if (flag === '--suite' && suiteFile && suiteOutput) {
  await runSuite(suiteFile, suiteOutput);
} else {
  const only = process.argv.slice(2);
  const files = readdirSync(benchDir)
    .filter((file) => file.endsWith('.bench.ts'))
    .filter((file) => only.length === 0 || only.some((name) => file.includes(name)))
    .sort();
  const scratch = mkdtempSync(join(tmpdir(), 'bulwark-bench-'));
  const results: BenchResult[] = [];
  try {
    for (const file of files) {
      for (const measurement of await runInChild(file, join(scratch, `${file}.json`))) {
        results.push(toResult(measurement));
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  console.log(renderTable(results));
  mkdirSync(outputDir, { recursive: true });
  const output = join(outputDir, 'bench.json');
  writeFileSync(
    output,
    `${JSON.stringify({ node: process.version, cpus: cpus().length, results }, null, 2)}\n`,
  );
  console.error(`wrote ${output}`);
}
// Keep-alive sockets and the embedded servers' handles must not hold the process open.
process.exit(0);
