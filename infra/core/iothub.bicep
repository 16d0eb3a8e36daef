// IoT Hub with the cloud-to-device settings the app relies on. Any tier but Basic: Basic hubs have
// no cloud-to-device messaging.
@description('IoT hub name.')
param name string

@description('Region of the hub.')
param location string

@description('Tags for the hub.')
param tags object = {}

@description('Tier: F1 (free, one per subscription), S1, S2 or S3. Basic tiers have no cloud-to-device messages.')
@allowed([
  'F1'
  'S1'
  'S2'
  'S3'
])
param sku string = 'S1'

@description('Number of units of the tier (F1: 1).')
@minValue(1)
@maxValue(200)
param units int = 1

@description('How many times IoT Hub delivers a C2D message before it gives up (DeliveryCountExceeded).')
@minValue(1)
@maxValue(100)
param c2dMaxDeliveryCount int = 10

@description('TTL of a C2D message that sets none (ISO 8601, PT1M to P2D). The app always sets one (C2D_DEFAULT_TTL_SECONDS).')
param c2dDefaultTtl string = 'PT1H'

@description('Lock a FeedbackProcessor run holds on a feedback message (ISO 8601, PT5S to PT5M).')
param feedbackLockDuration string = 'PT1M'

@description('How long feedback waits to be read (ISO 8601, PT1M to P2D). Outcomes older than this are lost if FeedbackProcessor is stopped.')
param feedbackTtl string = 'PT1H'

@description('How many times IoT Hub redelivers a feedback message that was not completed.')
@minValue(1)
@maxValue(100)
param feedbackMaxDeliveryCount int = 10

@description('Shared access policy for the app (connection-string mode only; empty: none).')
param appPolicyName string = ''

// IoT Hub's own default policies, kept when the app's policy is added (the list replaces the hub's).
var defaultPolicies = [
  {
    keyName: 'iothubowner'
    rights: 'RegistryWrite, ServiceConnect, DeviceConnect'
  }
  {
    keyName: 'service'
    rights: 'ServiceConnect'
  }
  {
    keyName: 'device'
    rights: 'DeviceConnect'
  }
  {
    keyName: 'registryRead'
    rights: 'RegistryRead'
  }
  {
    keyName: 'registryReadWrite'
    rights: 'RegistryWrite'
  }
]

// Sends and feedback (ServiceConnect), device queries (RegistryRead). Queue purge is a service operation.
var appPolicy = [
  {
    keyName: appPolicyName
    rights: 'RegistryRead, ServiceConnect'
  }
]

resource hub 'Microsoft.Devices/IotHubs@2023-06-30' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    capacity: units
  }
  properties: {
    authorizationPolicies: empty(appPolicyName) ? null : concat(defaultPolicies, appPolicy)
    cloudToDevice: {
      maxDeliveryCount: c2dMaxDeliveryCount
      defaultTtlAsIso8601: c2dDefaultTtl
      feedback: {
        lockDurationAsIso8601: feedbackLockDuration
        ttlAsIso8601: feedbackTtl
        maxDeliveryCount: feedbackMaxDeliveryCount
      }
    }
    eventHubEndpoints: {
      events: {
        retentionTimeInDays: 1
        partitionCount: 2
      }
    }
  }
}

output id string = hub.id
output name string = hub.name
output hostName string = hub.properties.hostName
output appPolicyName string = appPolicyName
