// The local failure switch: BULWARK_LOCAL_FAIL=users makes the runtime answer a function's routes as if it had crashed.
import { httpFunctionNames } from '../../functions/routes.js';

/**
 * Comma-separated function names (`users`, `users,bookings`) whose routes the local runtime answers
 * with 503 instead of invoking them, the way API Gateway answers for a failing integration. Read
 * only by the local runtime, never by function code; read per request, so a test can flip it.
 */
export const localFailVariable = 'BULWARK_LOCAL_FAIL';

/** The function names the switch lists. */
export function locallyFailingFunctions(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[localFailVariable] ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
}

/** Whether the switch names this function. */
export function isFailingLocally(functionName: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return locallyFailingFunctions(env).includes(functionName);
}

/**
 * The rule a switch of `value` breaks when it names a function that has no routes (a typo such as `user`
 * would otherwise fail nothing, silently), or undefined when every name is an HTTP function's.
 */
export function localFailProblem(value: string): string | undefined {
  const known: readonly string[] = httpFunctionNames;
  const unknown = locallyFailingFunctions({ [localFailVariable]: value }).filter(
    (name) => !known.includes(name),
  );
  return unknown.length === 0 ? undefined : `comma-separated function names of ${known.join(', ')}`;
}

/** What a crashed or overloaded dependency answers: no problem+json, nothing from the function. */
export const crashedFunctionResult = {
  statusCode: 503,
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ message: 'Service Unavailable' }),
} as const;
