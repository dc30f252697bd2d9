-- The time of an endpoint's last request, not only the minute it fell in: the endpoint page
-- said "Last request 52 s ago" of one made 2 s earlier, counting from the minute's start.
ALTER TABLE "EndpointRequestMinute" ADD COLUMN "lastRequestAt" TIMESTAMP(3);
