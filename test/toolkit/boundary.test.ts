// The toolkit (middleware/) is self-contained: it imports only its own files and the packages README's
// "Using the toolkit in your project" lists, so copying the folder into a project works.
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const repositoryRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const toolkitRoot = resolve(repositoryRoot, 'middleware');

/** What a project copying the toolkit installs: loaded at run time. */
const runtimePackages = [
  '@aws-lambda-powertools/commons',
  '@aws-lambda-powertools/idempotency',
  '@aws-lambda-powertools/jmespath',
  '@aws-lambda-powertools/logger',
  '@aws-lambda-powertools/metrics',
  '@aws-lambda-powertools/parameters',
  '@aws-sdk/client-dynamodb',
  '@aws-sdk/client-kms',
  '@aws-sdk/client-secrets-manager',
  '@aws-sdk/lib-dynamodb',
  '@smithy/node-http-handler',
  'ipaddr.js',
  'jose',
];
/** Imported for types only (the handler brings Middy itself); `aws-lambda` is @types/aws-lambda. */
const typePackages = ['@middy/core', '@standard-schema/spec', 'aws-lambda'];

interface ToolkitImport {
  readonly file: string;
  readonly specifier: string;
  readonly typeOnly: boolean;
}

function toolkitImports(): ToolkitImport[] {
  const files = readdirSync(toolkitRoot, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => resolve(toolkitRoot, name));
  return files.flatMap((file) => {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
    const found: ToolkitImport[] = [];
    const visit = (node: ts.Node): void => {
      if (
        (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
        node.moduleSpecifier &&
        ts.isStringLiteral(node.moduleSpecifier)
      ) {
        const typeOnly = ts.isImportDeclaration(node)
          ? node.importClause?.phaseModifier === ts.SyntaxKind.TypeKeyword
          : node.isTypeOnly;
        found.push({ file, specifier: node.moduleSpecifier.text, typeOnly });
      } else if (
        ts.isCallExpression(node) &&
        node.expression.kind === ts.SyntaxKind.ImportKeyword &&
        node.arguments[0] &&
        ts.isStringLiteral(node.arguments[0])
      ) {
        found.push({ file, specifier: node.arguments[0].text, typeOnly: false });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
    return found;
  });
}

const packageOf = (specifier: string) =>
  specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/');

describe('the toolkit (middleware/)', () => {
  const imports = toolkitImports();

  it('reads its imports (the scan finds the public index and its packages)', () => {
    expect(imports.some((entry) => entry.specifier === 'jose')).toBe(true);
    expect(imports.filter((entry) => entry.file.endsWith('middleware/index.ts')).length).toBeGreaterThan(10);
  });

  it('imports no file outside middleware/', () => {
    const outside = imports
      .filter(({ specifier }) => specifier.startsWith('.'))
      .filter(({ file, specifier }) =>
        relative(toolkitRoot, resolve(dirname(file), specifier)).startsWith('..'),
      )
      .map(({ file, specifier }) => `${relative(repositoryRoot, file)}: ${specifier}`);
    expect(outside).toEqual([]);
  });

  it('loads only the listed packages at run time, and the type-only ones only for types', () => {
    const external = imports.filter(
      ({ specifier }) =>
        !specifier.startsWith('.') && !specifier.startsWith('node:') && !builtinModules.includes(specifier),
    );
    const loaded = new Set(
      external.filter((entry) => !entry.typeOnly).map((entry) => packageOf(entry.specifier)),
    );
    const typed = new Set(
      external.filter((entry) => entry.typeOnly).map((entry) => packageOf(entry.specifier)),
    );
    expect([...loaded].sort()).toEqual(runtimePackages);
    expect([...typed].filter((name) => !loaded.has(name)).sort()).toEqual(typePackages);
  });

  it('finds each package it loads among the dependencies a production install gets', () => {
    const { dependencies } = JSON.parse(readFileSync(resolve(repositoryRoot, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(runtimePackages.filter((name) => dependencies[name] === undefined)).toEqual([]);
  });
});
