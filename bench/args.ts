/**
 * A bench's `key=value` arguments (`npm run bench -- jobs=3000` passes `jobs=3000`; a leading `--`
 * is dropped, so `--jobs=3000` is the same). A value may itself hold `=`; an argument without one
 * is a flag set to the empty string.
 */
export const args: Readonly<Record<string, string | undefined>> = Object.fromEntries(
  process.argv.slice(2).map((arg) => {
    const bare = arg.replace(/^--/, '');
    const equals = bare.indexOf('=');
    return equals < 0 ? [bare, ''] : [bare.slice(0, equals), bare.slice(equals + 1)];
  }),
);
