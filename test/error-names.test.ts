// The error classes of functions/ and middleware/ keep their names in a bundle built as CDK builds the deployed ones (minified).
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { bundlingOptions } from '../lib/bulwark-function.js';
import { esbuildOptionsFor } from './bench/cold-start.bench.js';

const repositoryRoot = join(import.meta.dirname, '..');

/** middleware/errors.ts names its classes through its own registry, checked in test/http/problem.test.ts. */
const toolkitErrorsModule = 'middleware/errors.ts';

/** Every `export class X extends …` under functions/ and middleware/, by the module that declares it. */
function exportedClasses(): { readonly name: string; readonly module: string }[] {
  return ['functions', 'middleware'].flatMap((folder) =>
    readdirSync(join(repositoryRoot, folder), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .map((file) => `${folder}/${file}`)
      .filter((module) => module !== toolkitErrorsModule)
      .flatMap((module) =>
        [
          ...readFileSync(join(repositoryRoot, module), 'utf8').matchAll(/^export class (\w+) extends /gm),
        ].map(([, name]) => ({ name: name as string, module })),
      ),
  );
}

/** Arguments for the constructors that cannot run without them; the others are built with none. */
const constructorArguments: Readonly<Record<string, readonly unknown[]>> = {
  StoredRecordError: [{ pk: 'USER#1', sk: 'PROFILE' }, 'email', 'missing'],
  EmailQueueError: [['verification']],
  BookingEventSweepError: [[3]],
};

describe('error class names', () => {
  it('survive the minified bundle CDK builds, so audit and log lines name the class as the source does', async () => {
    const classes = exportedClasses();
    const outdir = mkdtempSync(join(tmpdir(), 'bulwark-error-names-'));
    try {
      const entry = join(outdir, 'entry.ts');
      writeFileSync(
        entry,
        classes
          .map(
            ({ name, module }) => `export { ${name} } from ${JSON.stringify(join(repositoryRoot, module))};`,
          )
          .join('\n'),
      );
      // No source map: nothing here reads one, and a name comes from the code, not from the map.
      await build({ ...esbuildOptionsFor(bundlingOptions, outdir), entryPoints: [entry], sourcemap: false });
      const bundle = (await import(pathToFileURL(join(outdir, 'index.mjs')).href)) as Record<string, unknown>;
      const errorNames = classes.flatMap(({ name }) => {
        const exported = bundle[name];
        if (typeof exported !== 'function' || !(exported.prototype instanceof Error)) return [];
        const error = Reflect.construct(exported, constructorArguments[name] ?? []) as Error;
        return [[name, error.name]];
      });
      // The sample's own classes, so a class moved or renamed is not silently left out.
      expect(errorNames.map(([name]) => name)).toEqual(
        expect.arrayContaining([
          'UnverifiedEmailTakenError',
          'ExpiredConfirmedLinkError',
          'BookingIdTakenError',
        ]),
      );
      expect(errorNames.filter(([name, errorName]) => name !== errorName)).toEqual([]);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
