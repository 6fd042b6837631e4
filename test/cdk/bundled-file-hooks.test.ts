// The bundling hook that copies files next to a bundle: run by bash, from wherever the checkout is.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { bundledFileHooks } from '../../lib/bulwark-function.js';
import { shellWord } from '../../lib/shell-word.js';

const sandboxes: string[] = [];
afterEach(() => {
  for (const sandbox of sandboxes.splice(0)) rmSync(sandbox, { recursive: true, force: true });
});

it('copies from and to directories whose names a shell would expand or split, running nothing they name', () => {
  const sandbox = mkdtempSync(join(tmpdir(), 'bulwark-hooks-'));
  sandboxes.push(sandbox);
  // A CI workspace named after a branch: Git allows `$(…)`, quotes and spaces in branch names.
  const inputDir = join(sandbox, "checkout $(touch injected) it's");
  const outputDir = join(sandbox, 'bundle "out" `touch injected-too`');
  mkdirSync(join(inputDir, 'functions/email-worker/data'), { recursive: true });
  mkdirSync(outputDir);
  writeFileSync(join(inputDir, 'functions/email-worker/data/metadata.json'), '{"kept":true}');

  const commands = bundledFileHooks([
    { from: 'functions/email-worker/data/metadata.json', to: 'data/nested/metadata.json' },
  ]).afterBundling(inputDir, outputDir);
  for (const command of commands) execFileSync('bash', ['-c', command], { cwd: sandbox, stdio: 'pipe' });

  expect(readFileSync(join(outputDir, 'data/nested/metadata.json'), 'utf8')).toBe('{"kept":true}');
  expect(existsSync(join(sandbox, 'injected'))).toBe(false);
  expect(existsSync(join(sandbox, 'injected-too'))).toBe(false);
});

it('leaves a word no shell reads otherwise as it is, and single-quotes one with a space, $, a glob or a quote', () => {
  expect(shellWord('/work/main/functions/email-worker@v2:templates,a=b+c%d')).toBe(
    '/work/main/functions/email-worker@v2:templates,a=b+c%d',
  );
  expect(shellWord('/tmp/a b')).toBe("'/tmp/a b'");
  expect(shellWord('/tmp/$HOME')).toBe("'/tmp/$HOME'");
  expect(shellWord('/tmp/*')).toBe("'/tmp/*'");
  expect(shellWord("/tmp/it's")).toBe(`'/tmp/it'\\''s'`);
});
