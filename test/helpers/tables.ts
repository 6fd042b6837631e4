// Table names shared by the suite (created once by the global setup).
export const testTableNames = { app: 'bulwark-app', toolkit: 'bulwark-toolkit' } as const;
