// Top devices by play events, with users per device and those users' Technical/Playback tickets.
MATCH (a:Account)-[:WATCHED]->(e:PlayEvent)
WHERE e.device_fingerprint IS NOT NULL
WITH e.device_fingerprint AS device, count(e) AS play_events, collect(DISTINCT a) AS users
ORDER BY play_events DESC, device
LIMIT 10
RETURN device, play_events, size(users) AS users,
       COUNT { MATCH (u:Account)-[:SUBMITTED]->(t:Ticket)-[:TAGGED_WITH]->(g:Tag)
               WHERE u IN users AND g.tag_name IN ['Technical', 'Playback'] RETURN DISTINCT t } AS technical_playback_tickets
ORDER BY play_events DESC, device
