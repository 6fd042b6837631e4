// Role-based access control: roles grant `action:resource` permissions with wildcards, decisions cached per role set.
import { assertNoProblems } from '../errors.js';

/** A role's definition in configuration: its permissions and, optionally, roles it inherits from. */
export interface RoleDefinition {
  readonly permissions: readonly string[];
  /** Roles whose permissions this role also has. @default [] */
  readonly inherits?: readonly string[] | undefined;
}

export interface RbacOptions {
  /** Roles by name: a permission list or a {@link RoleDefinition}. @default {} */
  readonly roles?: Readonly<Record<string, readonly string[] | RoleDefinition>> | undefined;
  /** Cached decisions before the cache starts over (bounds memory under arbitrary role sets). @default 10000 */
  readonly maxCachedDecisions?: number | undefined;
}

/** `*`, or `action:resource` where either side may be `*`; names are letters, digits and `._/-`. */
const permissionPattern = /^(?:\*|(?:\*|[\w./-]+):(?:\*|[\w./-]+))$/;

function grants(granted: string, required: string): boolean {
  if (granted === '*' || granted === required) return true;
  const split = granted.indexOf(':');
  const requiredSplit = required.indexOf(':');
  if (split < 0 || requiredSplit < 0) return false;
  const action = granted.slice(0, split);
  const resource = granted.slice(split + 1);
  return (
    (action === '*' || action === required.slice(0, requiredSplit)) &&
    (resource === '*' || resource === required.slice(requiredSplit + 1))
  );
}

/**
 * An RBAC engine. `read:*` grants reading anything, `*:users` any action on users, `*` everything.
 * Decisions are cached per (role set, permission) and the cache is cleared when a role changes.
 *
 * @example
 * const rbac = new Rbac({ roles: { admin: ['*'], editor: { permissions: ['write:bookings'], inherits: ['viewer'] }, viewer: ['read:*'] } });
 * rbac.checkPermission(['editor'], 'read:users'); // true, inherited from viewer
 */
export class Rbac {
  private readonly roles = new Map<string, RoleDefinition>();
  private readonly decisions = new Map<string, boolean>();
  private readonly maxCachedDecisions: number;

  constructor(options: RbacOptions = {}) {
    const problems: string[] = [];
    this.maxCachedDecisions = options.maxCachedDecisions ?? 10_000;
    if (!(Number.isInteger(this.maxCachedDecisions) && this.maxCachedDecisions > 0)) {
      problems.push('maxCachedDecisions must be a positive integer');
    }
    for (const [name, definition] of Object.entries(options.roles ?? {})) {
      const role: RoleDefinition = Array.isArray(definition)
        ? { permissions: definition }
        : (definition as RoleDefinition);
      problems.push(...this.problemsOf(name, role));
      this.roles.set(name, role);
    }
    for (const [name, role] of this.roles) {
      if (Array.isArray(role?.inherits)) problems.push(...this.undefinedParents(name, role.inherits));
    }
    assertNoProblems('Rbac', problems);
  }

  /**
   * Adds or replaces a role.
   *
   * @example
   * rbac.addRole('admin', ['read:*', 'write:*', 'delete:*']);
   */
  addRole(
    name: string,
    permissions: readonly string[],
    options: { inherits?: readonly string[] | undefined } = {},
  ): this {
    const inherits = options.inherits ?? [];
    // Checked before copying: spreading a string would turn 'viewer' into roles v, i, e...
    const problems = this.problemsOf(name, { permissions, inherits });
    if (Array.isArray(inherits)) problems.push(...this.undefinedParents(name, inherits, name));
    assertNoProblems('Rbac', problems);
    this.roles.set(name, { permissions: [...permissions], inherits: [...inherits] });
    this.decisions.clear();
    return this;
  }

  /** Every permission the roles grant, inherited ones included; unknown roles grant nothing. */
  permissionsOf(roles: readonly string[]): Set<string> {
    const permissions = new Set<string>();
    const seen = new Set<string>();
    const pending = [...roles];
    // Iterative walk with a seen set: inheritance cycles terminate and each role counts once.
    for (let role = pending.pop(); role !== undefined; role = pending.pop()) {
      if (seen.has(role)) continue;
      seen.add(role);
      const definition = this.roles.get(role);
      if (definition === undefined) continue;
      for (const permission of definition.permissions) permissions.add(permission);
      pending.push(...(definition.inherits ?? []));
    }
    return permissions;
  }

  /**
   * Whether any of the roles grants the permission.
   *
   * @example
   * rbac.checkPermission(['user'], 'write:own'); // true when `user` has `write:own` or `write:*`
   */
  checkPermission(roles: readonly string[], permission: string): boolean {
    const key = `${[...roles].sort().join('\u0000')}\u0001${permission}`;
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    let allowed = false;
    for (const granted of this.permissionsOf(roles)) {
      if (grants(granted, permission)) {
        allowed = true;
        break;
      }
    }
    if (this.decisions.size >= this.maxCachedDecisions) this.decisions.clear();
    this.decisions.set(key, allowed);
    return allowed;
  }

  /** A misspelt parent would silently grant nothing: every role inherited must be defined (or be `self`). */
  private undefinedParents(name: string, inherits: readonly string[], self?: string): string[] {
    return inherits
      .filter((parent) => parent !== self && !this.roles.has(parent))
      .map((parent) => `role ${name} inherits ${JSON.stringify(parent)}, which is not defined`);
  }

  private problemsOf(name: string, role: RoleDefinition): string[] {
    const problems: string[] = [];
    if (!/^[\w.-]{1,64}$/.test(name)) problems.push(`role name ${JSON.stringify(name)} is invalid`);
    if (typeof role !== 'object' || role === null) {
      problems.push(`role ${name} must be a permission list or { permissions, inherits }`);
      return problems;
    }
    // A string would be walked letter by letter, inheriting from roles named v, i, e...
    if (
      role.inherits !== undefined &&
      !(Array.isArray(role.inherits) && role.inherits.every((parent) => typeof parent === 'string'))
    ) {
      problems.push(`role ${name}: inherits must be a list of role names`);
    }
    if (!Array.isArray(role.permissions)) {
      problems.push(`role ${name}: permissions must be a list`);
      return problems;
    }
    for (const permission of role.permissions) {
      if (typeof permission !== 'string' || !permissionPattern.test(permission)) {
        problems.push(
          `role ${name}: permission ${JSON.stringify(permission)} is not "*" or "action:resource"`,
        );
      }
    }
    return problems;
  }
}
