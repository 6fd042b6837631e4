import { describe, expect, it } from 'vitest';
import { Rbac } from '../../middleware/auth/rbac.js';
import { InvalidOptionsError } from '../../middleware/errors.js';

describe('Rbac', () => {
  const rbac = new Rbac()
    .addRole('admin', ['read:*', 'write:*', 'delete:*'])
    .addRole('user', ['read:own', 'write:own'])
    .addRole('auditor', ['*:audit'])
    .addRole('root', ['*']);

  it('grants a permission a role lists, as in the seed', () => {
    expect(rbac.checkPermission(['admin'], 'write:users')).toBe(true);
    expect(rbac.checkPermission(['user'], 'write:own')).toBe(true);
    expect(rbac.checkPermission(['user'], 'write:users')).toBe(false);
  });

  it('matches action wildcards, resource wildcards and the full wildcard', () => {
    expect(rbac.checkPermission(['admin'], 'delete:bookings')).toBe(true);
    expect(rbac.checkPermission(['admin'], 'approve:bookings')).toBe(false);
    expect(rbac.checkPermission(['auditor'], 'export:audit')).toBe(true);
    expect(rbac.checkPermission(['auditor'], 'export:users')).toBe(false);
    expect(rbac.checkPermission(['root'], 'anything:at-all')).toBe(true);
  });

  it('grants nothing to unknown roles or no roles', () => {
    expect(rbac.checkPermission(['ghost'], 'read:own')).toBe(false);
    expect(rbac.checkPermission([], 'read:own')).toBe(false);
  });

  it('combines the permissions of several roles', () => {
    expect(rbac.checkPermission(['user', 'auditor'], 'read:audit')).toBe(true);
  });

  it('inherits permissions, through cycles without looping', () => {
    const inheriting = new Rbac({
      roles: {
        viewer: ['read:*'],
        editor: { permissions: ['write:bookings'], inherits: ['viewer'] },
        chief: { permissions: [], inherits: ['editor', 'chief'] },
      },
    });
    expect(inheriting.checkPermission(['editor'], 'read:users')).toBe(true);
    expect(inheriting.checkPermission(['chief'], 'write:bookings')).toBe(true);
    expect(inheriting.checkPermission(['viewer'], 'write:bookings')).toBe(false);
    expect([...inheriting.permissionsOf(['chief'])].sort()).toEqual(['read:*', 'write:bookings']);
  });

  it('caches decisions per role set, whatever the order, and forgets them when a role changes', () => {
    const changing = new Rbac({ roles: { a: ['read:x'], b: [] } });
    expect(changing.checkPermission(['a', 'b'], 'write:x')).toBe(false);
    expect(changing.checkPermission(['b', 'a'], 'write:x')).toBe(false);
    changing.addRole('b', ['write:x']);
    expect(changing.checkPermission(['b', 'a'], 'write:x')).toBe(true);
  });

  it('stays correct when its decision cache overflows', () => {
    const small = new Rbac({ roles: { a: ['read:*'] }, maxCachedDecisions: 2 });
    for (const resource of ['x', 'y', 'z', 'x'])
      expect(small.checkPermission(['a'], `read:${resource}`)).toBe(true);
  });

  it('rejects malformed roles and permissions, listing every problem', () => {
    let error: unknown;
    try {
      new Rbac({
        roles: {
          'bad name!': ['read:x'],
          ok: ['read', 'read:x:y', ''],
          worse: { permissions: 'read:x' as never },
        },
        maxCachedDecisions: 0,
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).problems).toHaveLength(6);
    expect(() => new Rbac().addRole('x', ['read:'])).toThrow(InvalidOptionsError);
  });

  it('refuses a role that is null, or inherits given as a string, with InvalidOptionsError', () => {
    expect(() => new Rbac({ roles: { admin: null as never } })).toThrow(
      new InvalidOptionsError('Rbac', ['role admin must be a permission list or { permissions, inherits }']),
    );
    const stringInherits = { permissions: ['write:bookings'], inherits: 'viewer' as never };
    expect(() => new Rbac({ roles: { clerk: stringInherits } })).toThrow(
      new InvalidOptionsError('Rbac', ['role clerk: inherits must be a list of role names']),
    );
    expect(() => new Rbac().addRole('clerk', ['write:bookings'], { inherits: 'viewer' as never })).toThrow(
      new InvalidOptionsError('Rbac', ['role clerk: inherits must be a list of role names']),
    );
  });

  it('refuses a role inheriting one that is not defined, which would silently grant nothing', () => {
    expect(
      () =>
        new Rbac({
          roles: { viewer: ['read:*'], editor: { permissions: ['write:bookings'], inherits: ['veiwer'] } },
        }),
    ).toThrow(new InvalidOptionsError('Rbac', ['role editor inherits "veiwer", which is not defined']));
    // Defined later in the same options is defined: the check runs once every role is known.
    const rbac = new Rbac({
      roles: { editor: { permissions: [], inherits: ['viewer'] }, viewer: ['read:*'] },
    });
    expect(rbac.checkPermission(['editor'], 'read:users')).toBe(true);
    // addRole checks against the roles defined so far: a parent is added before its children.
    expect(() => rbac.addRole('clerk', ['write:bookings'], { inherits: ['veiwer'] })).toThrow(
      new InvalidOptionsError('Rbac', ['role clerk inherits "veiwer", which is not defined']),
    );
    expect(rbac.checkPermission(['clerk'], 'write:bookings')).toBe(false);
    rbac.addRole('clerk', ['write:bookings'], { inherits: ['viewer'] });
    expect(rbac.checkPermission(['clerk'], 'read:users')).toBe(true);
  });
});
