// Test apps synthesise with the feature flags in cdk.json, as `cdk synth` and `cdk deploy` do: `projectApp()`
// alone would fall back to CDK's legacy defaults and test a template nobody deploys.
import { readFileSync } from 'node:fs';
import { App, type AppProps } from 'aws-cdk-lib';

const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
  context: Record<string, unknown>;
};

/** The feature flags and other context `cdk.json` gives every synthesis. */
export const projectContext: Readonly<Record<string, unknown>> = cdkJson.context;

/** An App with cdk.json's context, under the test's own (which wins for the keys it names). */
export function projectApp(props: AppProps = {}): App {
  return new App({ ...props, context: { ...projectContext, ...props.context } });
}
