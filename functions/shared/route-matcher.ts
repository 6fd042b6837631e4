// Matches a request's method and path against the route table, the way API Gateway does: the local runtime routes with it, and the catch-all function explains a miss with it.
import { type ApiRoute, type RouteDefinition, routes, withHeadRoutes } from '../routes.js';

export type RouteMatch =
  | { kind: 'found'; route: ApiRoute; pathParameters: Record<string, string> }
  | { kind: 'method-not-allowed'; allow: string[] }
  | { kind: 'not-found' };

interface CompiledRoute {
  route: ApiRoute;
  pattern: RegExp;
  parameterNames: string[];
}

function compile(route: ApiRoute): CompiledRoute {
  const parameterNames: string[] = [];
  const source = route.path
    .split('/')
    .map((segment) => {
      const parameter = /^\{(\w+)\}$/.exec(segment);
      if (!parameter?.[1]) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      parameterNames.push(parameter[1]);
      return '([^/]+)';
    })
    .join('/');
  return { route, pattern: new RegExp(`^${source}$`), parameterNames };
}

/**
 * Builds a matcher over the route table (or a given list) and the HEAD route of each GET route, as
 * API Gateway has them; literal segments win over parameters, and `allow` lists HEAD wherever GET is.
 * It matches the path a function gets as `rawPath` (percent-decoded once): the local runtime routes on it
 * and the catch-all explains a miss with it, so both read one path. Parameters are its segments as they
 * are, never decoded again, so none holds a `/` (`/users/a%252Fb` gives the id `a%2Fb`).
 */
export function createRouteMatcher(
  table: readonly RouteDefinition[] = routes,
): (method: string, path: string) => RouteMatch {
  // API Gateway prefers the most specific route: fewer parameters first.
  const compiled = withHeadRoutes(table)
    .map(compile)
    .sort((a, b) => a.parameterNames.length - b.parameterNames.length);
  return (method, path) => {
    const candidates = compiled.flatMap((entry) => {
      const match = entry.pattern.exec(path);
      return match ? [{ entry, match }] : [];
    });
    if (candidates.length === 0) return { kind: 'not-found' };
    const hit = candidates.find(({ entry }) => entry.route.method === method);
    if (!hit)
      return {
        kind: 'method-not-allowed',
        allow: [...new Set(candidates.map(({ entry }) => entry.route.method))],
      };
    const pathParameters: Record<string, string> = {};
    hit.entry.parameterNames.forEach((name, index) => {
      pathParameters[name] = hit.match[index + 1] ?? '';
    });
    return { kind: 'found', route: hit.entry.route, pathParameters };
  };
}
