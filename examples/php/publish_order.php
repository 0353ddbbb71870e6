<?php
// Publishes one order to Herald's HTTP endpoint with PHP's curl extension
// and reads the answer, which comes after the event is stored.
//
//     php publish_order.php [URL]      (default http://127.0.0.1:8470)
//     HERALD_TOKEN=herald_... php publish_order.php    (a producer token)
//
// Exit status: 0 stored (201 new, 200 duplicate), 65 refused (4xx), 75 busy
// or storage full (503, 507: publish again later), 69 no answer.

$url = ($argv[1] ?? 'http://127.0.0.1:8470') . '/events';
$event = [                                      // a CloudEvents 1.0 envelope
    'specversion' => '1.0',
    'id' => bin2hex(random_bytes(16)),
    'source' => 'shop/checkout',
    'type' => 'order.confirmed',
    'time' => gmdate('Y-m-d\TH:i:s\Z'),
    'datacontenttype' => 'application/json',
    'data' => ['order_id' => 1042, 'customer' => ['email' => 'ada@example.com'],
               'items' => [['sku' => 'A-1', 'qty' => 1]]],
];
$headers = ['Content-Type: application/cloudevents+json'];
if (getenv('HERALD_TOKEN')) {
    $headers[] = 'Authorization: Bearer ' . getenv('HERALD_TOKEN');
}

$curl = curl_init($url);
curl_setopt_array($curl, [
    CURLOPT_POST => true,
    CURLOPT_POSTFIELDS => json_encode($event),
    CURLOPT_HTTPHEADER => $headers,
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_TIMEOUT => 5,
]);
$body = curl_exec($curl);
if ($body === false) {
    fwrite(STDERR, "no answer from $url: " . curl_error($curl) . "; publish it again: the same order_id is stored once (order.confirmed is keyed by data.order_id)\n");
    exit(69);
}
$status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
$answer = json_decode($body, true);
if ($status == 201 || $status == 200) {             // stored: {"id", "status": "new" | "duplicate"}
    echo "stored as {$answer['id']}" . ($answer['status'] === 'duplicate' ? ' (duplicate)' : '') . "\n";
    exit(0);
}
fwrite(STDERR, "refused ($status): {$answer['error']}\n");  // {"error", "code"}
exit($status == 503 || $status == 507 ? 75 : 65);
