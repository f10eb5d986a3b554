#!/usr/bin/env bun
import { runCli } from "./cli/run.ts";

// No top-level await: the compiled binary is built with bytecode, which needs CommonJS output.
void runCli(process.argv.slice(2)).then((code) => {
	process.exitCode = code;
});
