/**
 * The attacker of the race tests, in a process of its own: swaps what stands
 * at NAME between two objects as fast as it can, by renames (NAME holds A,
 * ALT_B holds B; each round puts B at NAME and A back). Stops when STOP
 * exists, or after MAX rounds; prints the number of rounds.
 *
 *   bun tests/helpers/swapper.ts NAME ALT_A ALT_B STOP MAX
 */
import { existsSync, renameSync } from "node:fs";

const [name, altA, altB, stop, max] = process.argv.slice(2) as [
	string,
	string,
	string,
	string,
	string,
];
let rounds = 0;
for (; rounds < Number(max); rounds++) {
	if (rounds % 64 === 0 && existsSync(stop)) break;
	try {
		renameSync(name, altA);
		renameSync(altB, name);
		renameSync(name, altB);
		renameSync(altA, name);
	} catch {
		// A victim's rm or put may have changed the tree: keep swapping what is there.
	}
}
process.stdout.write(`${rounds}\n`);
