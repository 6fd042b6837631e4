// The local failure switch: BULWARK_LOCAL_FAIL=users makes the runtime answer a function's routes as if it had crashed.

/**
 * Comma-separated function names (`users`, `users,bookings`) whose routes the local runtime answers
 * with 503 instead of invoking them, the way API Gateway answers for a failing integration. Read
 * only by the local runtime, never by function code; read per request, so a test can flip it.
 */
export const localFailVariable = 'BULWARK_LOCAL_FAIL';

/** Whether the switch names this function. */
export function isFailingLocally(functionName: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const names = env[localFailVariable];
  if (!names) return false;
  return names.split(',').some((name) => name.trim() === functionName);
}

/** What a crashed or overloaded dependency answers: no problem+json, nothing from the function. */
export const crashedFunctionResult = {
  statusCode: 503,
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ message: 'Service Unavailable' }),
} as const;
