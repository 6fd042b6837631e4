// What cdk.json makes every `cdk synth`, `cdk diff` and `cdk deploy` from this checkout do beyond the app.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
  app: string;
  notices?: boolean;
  context: Record<string, unknown>;
};

describe('cdk.json', () => {
  it('runs the app with the tsx the lockfile installs, never one npx would download', () => {
    expect(cdkJson.app).toBe('node --import tsx bin/app.ts');
  });

  it("turns off the CDK CLI's telemetry and notices, which reach AWS endpoints on every command", () => {
    expect(cdkJson.context['cli-telemetry']).toBe(false);
    expect(cdkJson.notices).toBe(false);
  });
});
