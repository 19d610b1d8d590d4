// Pairs of accounts that share a card fingerprint, with card type and last four digits.
MATCH (a1:Account)-[:HAS_PAYMENT_METHOD]->(p1:PaymentMethod),
      (a2:Account)-[:HAS_PAYMENT_METHOD]->(p2:PaymentMethod)
WHERE p1.card_fingerprint = p2.card_fingerprint AND a1.account_id < a2.account_id
RETURN a1.account_id AS account_1, a2.account_id AS account_2,
       p1.card_fingerprint AS card_fingerprint,
       p1.card_type AS card_type_1, p1.card_last_four AS last_four_1,
       p2.card_type AS card_type_2, p2.card_last_four AS last_four_2
ORDER BY card_fingerprint, account_1, account_2
