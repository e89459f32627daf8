// The control plane's certificates and keys, made with the openssl CLI once per state folder:
// a CA, the apiserver's serving certificate, one client certificate per component (so RBAC
// sees the same identities as in a real cluster), the node agent's kubelet serving
// certificate, and the service-account signing key pair.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";

export interface Pki {
  dir: string;
  ca: string;
  caKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
  /** cert/key pairs by name: apiserver, admin, scheduler, controller-manager, kubelet-client, kubelet. */
  cert(name: CertName): { cert: string; key: string };
}

export type CertName =
  "apiserver" | "admin" | "scheduler" | "controller-manager" | "kubelet-client" | "kubelet";

interface CertSpec {
  subject: string;
  usage: "serverAuth" | "clientAuth";
  san?: string;
}

const certs: Record<CertName, CertSpec> = {
  apiserver: {
    subject: "/CN=kube-apiserver",
    usage: "serverAuth",
    san: "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local",
  },
  admin: { subject: "/O=system:masters/CN=herd-admin", usage: "clientAuth" },
  scheduler: { subject: "/CN=system:kube-scheduler", usage: "clientAuth" },
  "controller-manager": { subject: "/CN=system:kube-controller-manager", usage: "clientAuth" },
  // The apiserver's identity towards kubelets (logs, exec); the node agent checks it against the CA.
  "kubelet-client": {
    subject: "/O=system:masters/CN=kube-apiserver-kubelet-client",
    usage: "clientAuth",
  },
  kubelet: {
    subject: "/CN=herd-node-agent",
    usage: "serverAuth",
    san: "IP:127.0.0.1,DNS:localhost",
  },
};

const openssl = (args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });

export function ensurePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => path.join(dir, f);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  if (!existsSync(p("ca.crt"))) {
    openssl(
      ["req", "-x509", ...ec, "-keyout", p("ca.key"), "-out", p("ca.crt")].concat([
        "-days",
        "3650",
        "-subj",
        "/CN=herd-dev-ca",
      ]),
    );
  }
  for (const [name, spec] of Object.entries(certs)) {
    if (existsSync(p(`${name}.crt`))) continue;
    const ext = ["-addext", "basicConstraints=critical,CA:FALSE"];
    ext.push("-addext", `extendedKeyUsage=${spec.usage}`);
    if (spec.san) ext.push("-addext", `subjectAltName=${spec.san}`);
    openssl(
      ["req", "-x509", ...ec, "-keyout", p(`${name}.key`), "-out", p(`${name}.crt`)]
        .concat(["-days", "3650", "-subj", spec.subject, "-CA", p("ca.crt"), "-CAkey", p("ca.key")])
        .concat(ext),
    );
  }
  // Service-account tokens are signed with RSA (RS256 is what every consumer accepts).
  if (!existsSync(p("sa.key"))) {
    openssl([
      "genpkey",
      "-algorithm",
      "RSA",
      "-pkeyopt",
      "rsa_keygen_bits:2048",
      "-out",
      p("sa.key"),
    ]);
    openssl(["pkey", "-in", p("sa.key"), "-pubout", "-out", p("sa.pub")]);
  }
  return {
    dir,
    ca: p("ca.crt"),
    caKey: p("ca.key"),
    serviceAccountKey: p("sa.key"),
    serviceAccountPub: p("sa.pub"),
    cert: (name) => ({ cert: p(`${name}.crt`), key: p(`${name}.key`) }),
  };
}
