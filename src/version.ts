// One source of truth: `bun build` inlines package.json's version into the
// binary, and `bun src/main.ts` in development reads the same field.
import { version } from "../package.json" with { type: "json" };

export const VERSION: string = version;
