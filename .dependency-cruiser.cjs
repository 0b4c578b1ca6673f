// dependency-cruiser: the dependency direction of DESIGN.md, checked by `npm run lint:deps`.
// Paths are relative to the repo root. Rules hold for production code; tests, test support, bench
// and (where said) the standalone sandbox host are exempt.
const { readFileSync, readdirSync, existsSync } = require('node:fs');
const { join } = require('node:path');

/** Files that are never production code: tests, their support, benchmarks, tool configs. */
const TEST_CODE = [
  '\\.test\\.ts$',
  '^tests/',
  '^bench/',
  '(^|/)test-support\\.ts$',
  '(^|/)testing\\.ts$',
  '^apps/api/src/testing/',
];
/** In-process fakes of Google Calendar, AFIP and S3, for tests and the standalone sandbox. */
const FAKES = ['^packages/calendar/src/fake/', '^packages/afip/src/simulator/', '^packages/backup/src/fake-s3/'];
const CONNECTORS = '^packages/(calendar|afip|backup)/';
const WORKSPACE_CODE = '^(apps|packages)/';
const npm = (...names) => `(^|/)node_modules/(${names.join('|')})/`;

/** Every workspace with the @jobfleet packages its package.json declares. */
const workspaces = ['apps', 'packages'].flatMap((group) =>
  readdirSync(group)
    .filter((dir) => existsSync(join(group, dir, 'package.json')))
    .map((dir) => {
      const manifest = JSON.parse(readFileSync(join(group, dir, 'package.json'), 'utf8'));
      return {
        dir: `${group}/${dir}`,
        name: manifest.name,
        dependencies: Object.keys(manifest.dependencies ?? {}),
        devDependencies: Object.keys(manifest.devDependencies ?? {}),
      };
    }),
);
const dirOf = new Map(workspaces.map((w) => [w.name, w.dir]));
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const pathsOf = (names) => names.map((name) => dirOf.get(name)).filter(Boolean).map((dir) => `^${escape(dir)}/`);

// A workspace may import another one only if its own package.json lists it: production code from
// `dependencies`, its tests also from `devDependencies`. (dependency-cruiser's npm-no-pkg does not
// see @jobfleet imports made from inside a workspace: it classifies them "undetermined".)
const undeclaredWorkspaceRules = workspaces.flatMap((w) => {
  const self = `^${escape(w.dir)}/`;
  const production = [self, ...pathsOf(w.dependencies)];
  const withDev = [...production, ...pathsOf(w.devDependencies)];
  return [
    {
      name: 'workspace-dependency-declared',
      comment: `${w.name} imports a workspace package its package.json "dependencies" do not list`,
      severity: 'error',
      from: { path: self, pathNot: TEST_CODE },
      to: { path: WORKSPACE_CODE, pathNot: production },
    },
    {
      name: 'workspace-dependency-declared',
      comment: `a test of ${w.name} imports a workspace package its package.json does not list (dependencies or devDependencies)`,
      severity: 'error',
      from: { path: [`${self}.*\\.test\\.ts$`, `${self}.*/test-support\\.ts$`, `${self}.*/testing\\.ts$`, `${self}src/testing/`] },
      to: { path: WORKSPACE_CODE, pathNot: withDev },
    },
  ];
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Circular dependency: break the cycle (move the shared part down a layer)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'connectors-know-no-queue',
      comment: 'Connector packages (calendar, afip, backup) never import packages/queue or an app',
      severity: 'error',
      from: { path: CONNECTORS, pathNot: TEST_CODE },
      to: { path: ['^packages/queue/', '^apps/'] },
    },
    {
      name: 'contracts-do-no-io',
      comment: 'packages/contracts is schemas and names only: no file, network, process, Redis, SQL, queue or SDK module',
      severity: 'error',
      from: { path: '^packages/contracts/', pathNot: TEST_CODE },
      to: {
        path: [
          '^(node:)?(fs|net|http|https|http2|child_process|dgram|tls)(/|$)',
          npm('ioredis', 'pg', 'bullmq', 'googleapis', 'soap', '@aws-sdk/[^/]+', 'drizzle-orm', 'drizzle-kit', '@electric-sql/pglite'),
        ],
      },
    },
    {
      name: 'contracts-import-no-workspace',
      comment: 'packages/contracts depends on no package of ours',
      severity: 'error',
      from: { path: '^packages/contracts/', pathNot: TEST_CODE },
      to: { path: WORKSPACE_CODE, pathNot: '^packages/contracts/' },
    },
    {
      name: 'config-imports-no-workspace',
      comment: 'packages/config depends on no package of ours',
      severity: 'error',
      from: { path: '^packages/config/', pathNot: TEST_CODE },
      to: { path: WORKSPACE_CODE, pathNot: '^packages/config/' },
    },
    {
      name: 'db-knows-no-queues',
      comment: 'packages/db never imports bullmq or packages/queue',
      severity: 'error',
      from: { path: '^packages/db/', pathNot: TEST_CODE },
      to: { path: ['^packages/queue/', npm('bullmq')] },
    },
    {
      name: 'api-calls-no-connector',
      comment: 'apps/api only validates and enqueues: no connector package, googleapis, soap, node-forge or AWS SDK',
      severity: 'error',
      from: { path: '^apps/api/', pathNot: TEST_CODE },
      to: { path: [CONNECTORS, npm('googleapis', 'googleapis-common', 'soap', 'node-forge', '@aws-sdk/[^/]+')] },
    },
    {
      name: 'production-imports-no-fake',
      comment: 'Only tests, bench and apps/standalone (the sandbox host) start the fake Calendar, AFIP simulator or fake S3',
      severity: 'error',
      from: { path: WORKSPACE_CODE, pathNot: [...TEST_CODE, ...FAKES, '^apps/standalone/'] },
      to: { path: FAKES },
    },
    {
      name: 'production-imports-no-test-support',
      comment: 'Production code (the fakes and apps/standalone included) never imports tests/ or test support',
      severity: 'error',
      from: { path: WORKSPACE_CODE, pathNot: TEST_CODE },
      to: { path: TEST_CODE },
    },
    {
      name: 'no-reaching-into-another-workspace',
      comment: "Import another workspace by its package name (@jobfleet/...), never by a relative path into its files",
      severity: 'error',
      from: { path: '^(apps|packages)/([^/]+)/', pathNot: TEST_CODE },
      to: { path: WORKSPACE_CODE, pathNot: '^$1/$2/', dependencyTypes: ['local'] },
    },
    ...undeclaredWorkspaceRules,
    {
      name: 'no-non-package-json',
      comment: "Production code imports an npm package its workspace's package.json does not list",
      severity: 'error',
      from: { path: WORKSPACE_CODE, pathNot: [...TEST_CODE, '^packages/db/drizzle\\.config\\.ts$'] },
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-dev-dep',
      comment: 'Production code imports a package listed only in devDependencies',
      severity: 'error',
      from: { path: WORKSPACE_CODE, pathNot: [...TEST_CODE, '^packages/db/drizzle\\.config\\.ts$'] },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Build output or coverage left in a workspace (not node_modules/*/dist: packages resolve there).
    exclude: { path: '^(apps|packages)/[^/]+/(dist|coverage)/' },
    // Type-only imports count: `import type` still couples the two modules.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
      extensions: ['.ts', '.d.ts', '.js', '.json'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
