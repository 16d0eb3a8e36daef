// Service Bus Standard namespace with the outcome topic and the subscriptions the README documents.
@description('Namespace name.')
param name string

@description('Region of the namespace.')
param location string

@description('Tags for the namespace.')
param tags object = {}

@description('Topic FeedbackProcessor publishes outcomes to (the app setting OUTCOME_TOPIC).')
param topicName string = 'c2d-outcomes'

@description('Window in which a re-published outcome (same deterministic message id) is dropped.')
param duplicateDetectionWindow string = 'PT1H'

@description('How long an outcome waits on a subscription before it expires.')
param outcomeTtl string = 'P14D'

@description('false: only Microsoft Entra identities may connect (managed-identity mode). true: SAS keys work too (connection-string mode).')
param allowSasKeys bool = false

@description('Topic-level Send-only SAS rule for the app (connection-string mode only; empty: none).')
param sendRuleName string = ''

// Subscriptions the README documents: 'all' gets every outcome, the others a SQL filter on the
// outcome's application properties.
var allSubscriptionName = 'all'
var filteredSubscriptions = [
  {
    name: 'failed'
    filter: 'status <> \'Success\''
  }
  {
    name: 'succeeded'
    filter: 'status = \'Success\''
  }
]

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: !allowSasKeys
    minimumTlsVersion: '1.2'
  }
}

resource topic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: topicName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    defaultMessageTimeToLive: outcomeTtl
    enableBatchedOperations: true
  }
}

var subscriptionProperties = {
  deadLetteringOnMessageExpiration: true
  maxDeliveryCount: 10
  lockDuration: 'PT1M'
}

resource allSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = {
  parent: topic
  name: allSubscriptionName
  properties: subscriptionProperties
}

resource filteredSubscription 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2024-01-01' = [for subscription in filteredSubscriptions: {
  parent: topic
  name: subscription.name
  properties: subscriptionProperties
}]

// A subscription starts with a '$Default' rule that matches everything; a filtered subscription
// must replace that rule (a second rule would be OR-ed with it and filter nothing).
resource filters 'Microsoft.ServiceBus/namespaces/topics/subscriptions/rules@2024-01-01' = [for (subscription, i) in filteredSubscriptions: {
  parent: filteredSubscription[i]
  name: '$Default'
  properties: {
    filterType: 'SqlFilter'
    sqlFilter: {
      sqlExpression: subscription.filter
    }
  }
}]

resource sendRule 'Microsoft.ServiceBus/namespaces/topics/authorizationRules@2024-01-01' = if (!empty(sendRuleName)) {
  parent: topic
  name: empty(sendRuleName) ? 'unused' : sendRuleName
  properties: {
    rights: [
      'Send'
    ]
  }
}

output id string = namespace.id
output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output topicName string = topic.name
output subscriptionNames array = concat([allSubscriptionName], map(filteredSubscriptions, s => s.name))
