"""The amqp connector (RabbitMQ, AMQP 0-9-1): a queue consumer and a publisher with confirms."""
