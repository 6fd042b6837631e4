// One copy of each package the deployed bundles share, as the lockfile installs them: a second copy would be bundled twice.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * Families whose packages depend on one another: bumping some of them alone (as `npm outdated` proposes
 * when only some Powertools packages have a new release) nests older copies of the shared ones, which
 * esbuild then bundles beside the newer, and every function grows.
 */
const sharedFamilies = ['@aws-sdk/', '@smithy/', '@aws-lambda-powertools/', '@middy/'];

interface Lockfile {
  readonly packages: Readonly<Record<string, { readonly version?: string }>>;
}

/** The versions the lockfile installs of each package of `families`, by package name. */
function installedVersions(lockfile: Lockfile, families: readonly string[]): Map<string, Set<string>> {
  const versions = new Map<string, Set<string>>();
  for (const [path, { version }] of Object.entries(lockfile.packages)) {
    const name = path.split('node_modules/').at(-1) ?? '';
    if (version === undefined || !families.some((family) => name.startsWith(family))) continue;
    versions.set(name, (versions.get(name) ?? new Set()).add(version));
  }
  return versions;
}

/** Each package of `families` the lockfile installs in more than one version, with its versions. */
function duplicatedPackages(lockfile: Lockfile, families: readonly string[]): string[] {
  return [...installedVersions(lockfile, families)]
    .filter(([, found]) => found.size > 1)
    .map(([name, found]) => `${name}: ${[...found].join(', ')}`);
}

describe('the lockfile', () => {
  const lockfile = JSON.parse(
    readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8'),
  ) as Lockfile;

  it('installs one version of each AWS SDK, Smithy, Powertools and Middy package', () => {
    expect(installedVersions(lockfile, sharedFamilies).size).toBeGreaterThan(30);
    expect(duplicatedPackages(lockfile, sharedFamilies)).toEqual([]);
  });

  it('finds a nested older copy, as a partial Powertools bump would leave it', () => {
    const partialBump: Lockfile = {
      packages: {
        'node_modules/@aws-lambda-powertools/commons': { version: '2.36.0' },
        'node_modules/@aws-lambda-powertools/idempotency/node_modules/@aws-lambda-powertools/commons': {
          version: '2.35.0',
        },
      },
    };
    expect(duplicatedPackages(partialBump, sharedFamilies)).toEqual([
      '@aws-lambda-powertools/commons: 2.36.0, 2.35.0',
    ]);
  });
});
