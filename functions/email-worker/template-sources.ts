// Build time only: the .hbs sources precompiled into templates.generated.ts, so the worker ships handlebars' runtime and no compiler.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import Handlebars from 'handlebars';

/** The template sources: `<name>.<part>.hbs`, keyed `<name>.<part>` (e.g. `welcome.subject`). */
export const templateSourcesDir = new URL('./templates/', import.meta.url);
export const precompiledTemplatesFile = new URL('./templates.generated.ts', import.meta.url);

/**
 * strict: a variable the data lacks throws instead of rendering as an empty string. Only HTML parts
 * escape: a subject, a text part or an SMS is not markup.
 */
function compileOptions(key: string): CompileOptions {
  return { strict: true, noEscape: !key.endsWith('.html') };
}

type CompileOptions = Parameters<typeof Handlebars.precompile>[1];

/** One template compiled at run time with the options the generated module was built with (for tests). */
export function compileTemplate(key: string, source: string): (data: unknown) => string {
  return Handlebars.compile(source, compileOptions(key));
}

/** The generated module's whole text, from every `.hbs` file in `dir`, in name order. */
export function precompiledTemplatesModule(dir: URL = templateSourcesDir): string {
  const entries = readdirSync(dir)
    .filter((file) => file.endsWith('.hbs'))
    .sort()
    .map((file) => {
      const key = file.slice(0, -'.hbs'.length);
      const spec = Handlebars.precompile(readFileSync(new URL(file, dir), 'utf8'), compileOptions(key));
      return `  ${JSON.stringify(key)}: ${String(spec)},\n`;
    });
  return [
    '// Generated from templates/*.hbs by `npm run templates` (and `npm start`): edit those, not this file.\n',
    "// @ts-nocheck: handlebars' precompiled code is untyped JavaScript; the export below carries the type.\n",
    "import type { TemplateSpecification } from 'handlebars';\n\n",
    'export const precompiledTemplates: Readonly<Record<string, TemplateSpecification>> = {\n',
    ...entries,
    '};\n',
  ].join('');
}

/** Rewrites the generated module when a source changed; true when it did. */
export function writePrecompiledTemplates(): boolean {
  const text = precompiledTemplatesModule();
  let current: string | undefined;
  try {
    current = readFileSync(precompiledTemplatesFile, 'utf8');
  } catch {
    current = undefined;
  }
  if (current === text) return false;
  writeFileSync(precompiledTemplatesFile, text);
  return true;
}
