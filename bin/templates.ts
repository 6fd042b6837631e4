// `npm run templates`: precompiles functions/email-worker/templates/*.hbs into templates.generated.ts.
import { fileURLToPath } from 'node:url';
import {
  precompiledTemplatesFile,
  writePrecompiledTemplates,
} from '../functions/email-worker/template-sources.js';

const file = fileURLToPath(precompiledTemplatesFile);
console.log(writePrecompiledTemplates() ? `templates: wrote ${file}` : `templates: ${file} is up to date`);
