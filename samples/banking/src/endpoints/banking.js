// The banking sample of microsoft/ccf-app-samples (banking-app), written
// as a plain ES module against the ccf global: members create accounts and
// deposit, users transfer between accounts, read their balance and fetch a
// receipt for a transfer whose claim (who sent what to whom) is bound into
// the ledger through the claims digest.
//
// Storage, as in the original:
//   user_accounts:<user_id>  private map, account name (UTF-8) -> balance (uint32 LE)
//   current_claim            private map, "key" -> JSON {userId, claim}

const usersCerts = ccf.kv["public:ccf.gov.users.certs"];
const currentClaim = ccf.kv["current_claim"];
const claimKey = ccf.strToBuf("key");

// historicalHandle identifies this app's cached historical states.
const historicalHandle = 0;
const historicalExpirySeconds = 1800;

function userExists(userId) {
  return typeof userId === "string" && usersCerts.has(ccf.strToBuf(userId));
}

function accounts(userId) {
  return ccf.kv["user_accounts:" + userId];
}

function getBalance(map, accountName) {
  const v = map.get(ccf.strToBuf(accountName));
  return v === undefined ? undefined : new DataView(v).getUint32(0, true);
}

function setBalance(map, accountName, balance) {
  const buf = new ArrayBuffer(4);
  new DataView(buf).setUint32(0, balance, true);
  map.set(ccf.strToBuf(accountName), buf);
}

function isPositiveInteger(value) {
  return Number.isInteger(value) && value > 0;
}

function parseBody(request) {
  try {
    return { body: request.body.json() };
  } catch (e) {
    return { error: { statusCode: 400, body: "Request body is not valid JSON" } };
  }
}

export function createAccount(request) {
  const userId = request.params.user_id;
  if (!userExists(userId)) {
    return { statusCode: 404, body: "User doesn't exist" };
  }
  const accountName = request.params.account_name;
  const map = accounts(userId);
  if (!map.has(ccf.strToBuf(accountName))) {
    setBalance(map, accountName, 0);
  }
  console.log("Create Account Completed");
  return { statusCode: 204 };
}

export function deposit(request) {
  const parsed = parseBody(request);
  if (parsed.error) {
    return parsed.error;
  }
  const value = parsed.body === null || typeof parsed.body !== "object" ? undefined : parsed.body.value;
  if (!isPositiveInteger(value)) {
    return { statusCode: 400, body: "Value " + value + " is not a positive integer" };
  }
  const userId = request.params.user_id;
  if (!userExists(userId)) {
    return { statusCode: 404, body: "User doesn't exist" };
  }
  const accountName = request.params.account_name;
  const map = accounts(userId);
  const balance = getBalance(map, accountName);
  if (balance === undefined) {
    return { statusCode: 404, body: "Account doesn't exist" };
  }
  if (balance + value > 0xffffffff) {
    return { statusCode: 400, body: "Balance would overflow" };
  }
  setBalance(map, accountName, balance + value);
  console.log("Deposit Completed");
  return { statusCode: 204 };
}

export function transfer(request) {
  const parsed = parseBody(request);
  if (parsed.error) {
    return parsed.error;
  }
  const body = parsed.body === null || typeof parsed.body !== "object" ? {} : parsed.body;
  const value = body.value;
  if (!isPositiveInteger(value)) {
    return { statusCode: 400, body: "Value " + value + " is not a positive integer" };
  }
  const userId = request.caller.id;
  if (!userExists(userId)) {
    return { statusCode: 404, body: "User doesn't exist" };
  }
  const userIdTo = body.user_id_to;
  if (!userExists(userIdTo)) {
    return { statusCode: 404, body: "User to transfer to doesn't exist" };
  }
  const accountName = request.params.account_name;
  const accountNameTo = String(body.account_name_to);
  const from = accounts(userId);
  const to = accounts(userIdTo);
  const balance = getBalance(from, accountName);
  if (balance === undefined) {
    return { statusCode: 404, body: "Account doesn't exist" };
  }
  const balanceTo = getBalance(to, accountNameTo);
  if (balanceTo === undefined) {
    return { statusCode: 404, body: "Account to transfer to doesn't exist" };
  }
  if (value > balance) {
    return { statusCode: 400, body: "Balance is not enough" };
  }
  if (userId === userIdTo && accountName === accountNameTo) {
    return { statusCode: 204 };
  }
  if (balanceTo + value > 0xffffffff) {
    return { statusCode: 400, body: "Balance would overflow" };
  }
  setBalance(from, accountName, balance - value);
  setBalance(to, accountNameTo, balanceTo + value);

  const claim = userId + " sent " + value + " to " + userIdTo;
  currentClaim.set(claimKey, ccf.jsonCompatibleToBuf({ userId: userId, claim: claim }));
  ccf.rpc.setClaimsDigest(ccf.crypto.digest("SHA-256", ccf.strToBuf(claim)));
  console.log("Transfer Completed");
  return { statusCode: 204 };
}

export function balance(request) {
  const userId = request.caller.id;
  if (!userExists(userId)) {
    return { statusCode: 404, body: "User doesn't exist" };
  }
  const balance = getBalance(accounts(userId), request.params.account_name);
  if (balance === undefined) {
    return { statusCode: 404, body: "Account doesn't exist" };
  }
  return { body: { balance: balance } };
}

function queryParam(query, name) {
  for (const part of query.split("&")) {
    const i = part.indexOf("=");
    const k = i < 0 ? part : part.slice(0, i);
    if (k === name) {
      return i < 0 ? "" : decodeURIComponent(part.slice(i + 1));
    }
  }
  return undefined;
}

export function getTransactionReceipt(request) {
  const userId = request.caller.id;
  const txId = queryParam(request.query, "transaction_id");
  const m = /^(\d+)\.(\d+)$/.exec(txId === undefined ? "" : txId);
  if (m === null) {
    return { statusCode: 400, body: "Invalid transaction id: " + txId };
  }
  const seqno = Number(m[2]);
  if (!Number.isSafeInteger(seqno) || seqno < 1) {
    return { statusCode: 400, body: "Invalid transaction id: " + txId };
  }
  const states = ccf.historical.getStateRange(historicalHandle, seqno, seqno, historicalExpirySeconds);
  if (states === null) {
    return {
      statusCode: 202,
      headers: { "retry-after": "1" },
      body: "Historical transactions from " + seqno + " to " + seqno + " are not yet available, fetching now",
    };
  }
  const state = states[0];
  const item = state.kv["current_claim"].get(claimKey);
  if (item === undefined) {
    return { statusCode: 404, body: "No claim in transaction " + txId };
  }
  const claim = ccf.bufToJsonCompatible(item);
  if (claim.userId !== userId) {
    return { statusCode: 404, body: "No claim of yours in transaction " + txId };
  }
  const receipt = state.receipt;
  return {
    body: {
      cert: receipt.cert,
      leaf_components: {
        claim: claim.claim,
        commit_evidence: receipt.leaf_components.commit_evidence,
        write_set_digest: receipt.leaf_components.write_set_digest,
      },
      node_id: receipt.node_id,
      proof: receipt.proof,
      signature: receipt.signature,
    },
  };
}
