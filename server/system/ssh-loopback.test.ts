import ssh2 from "ssh2";
import { describe, expect, it } from "vitest";
import { freshEd25519KeyPair } from "./ssh-loopback";

const { utils } = ssh2;

// ssh2's own generator returns a key it cannot read about once in 256 draws (a public key
// starting with a zero byte loses it). The self-test's pairs must always be usable: over 3 000
// draws the slip would almost surely (p > 0.999) come up at least once.

describe("freshEd25519KeyPair", () => {
  it("only hands out pairs whose keys ssh2 reads back whole and can sign with", () => {
    for (let i = 0; i < 3000; i++) {
      const pair = freshEd25519KeyPair();
      expect(pair.parsed.type).toBe("ssh-ed25519");
      // The SSH wire form: string "ssh-ed25519" (4 + 11 bytes), then string key (4 + 32 bytes).
      expect(pair.parsed.getPublicSSH().length).toBe(4 + 11 + 4 + 32);
      if (i % 500 === 0) {
        const priv = utils.parseKey(pair.private);
        if (priv instanceof Error) throw priv;
        const key = Array.isArray(priv) ? priv[0] : priv;
        const data = Buffer.from(`draw ${i}`);
        expect(pair.parsed.verify(data, key.sign(data))).toBe(true);
      }
    }
  });
});
